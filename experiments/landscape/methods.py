"""The methods that search a landscape: every optimizer through its real class in one
compiled loop, and the lecture's two baselines (grid search, greedy search); what each
achieved (``summarize``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from experiments.landscape.functions import Landscape


@dataclass
class Trajectory:
    """The iterates of one method: row t is W(t) (row 0 the start)."""

    label: str
    points: np.ndarray  # (k, 2)
    losses: np.ndarray  # (k,)
    evaluations: int
    grad_norms: Optional[np.ndarray] = None  # gradient methods only
    kind: str = "optimizer"  # optimizer, grid or greedy
    summary: dict = field(default_factory=dict)
    rule: str = ""  # an optimizer's rule (``adam``), also for its Keras twin
    keras: bool = False  # the Keras twin of ``rule``


def optimize(f, start, optimizers: dict, steps: int) -> list[Trajectory]:
    """``steps`` updates of every optimizer in ``{label: optimizer}`` on ``f`` from
    ``start``, each on its own ``tf.Variable``, all in one compiled loop.

    Row t of a trajectory is the iterate W(t) with f and ‖∇f‖ there: ``steps + 1``
    evaluations of f and its gradient, ``steps`` calls of ``apply_gradients``.
    """
    import tensorflow as tf

    pairs = []
    for label, optimizer in optimizers.items():
        var = tf.Variable(np.asarray(start, np.float32), name=f"w_{label}")
        optimizer.build([var])
        pairs.append((var, optimizer))

    def rows():
        grads, values = [], []
        for var, _ in pairs:
            with tf.GradientTape() as tape:
                loss = f(var[0], var[1], tf.math)
            grad = tape.gradient(loss, var)
            grads.append(grad)
            values.append(tf.concat([[loss], var.read_value(), [tf.norm(grad)]], 0))
        return grads, tf.stack(values)

    @tf.function
    def loop(n):
        out = tf.TensorArray(tf.float32, size=n + 1)
        for t in tf.range(n):
            grads, values = rows()
            out = out.write(t, values)
            for grad, (var, optimizer) in zip(grads, pairs):
                optimizer.apply_gradients([(grad, var)])
        out = out.write(n, rows()[1])
        return out.stack()

    table = loop(tf.constant(steps, tf.int32)).numpy().astype(np.float64)  # (t, method, 4)
    return [Trajectory(label, table[:, i, 1:3], table[:, i, 0], steps + 1,
                       grad_norms=table[:, i, 3]) for i, label in enumerate(optimizers)]


def grid_search(f, bounds, points: int) -> Trajectory:
    """The lecture's brute force: f on a ``points`` x ``points`` grid, the best point kept."""
    xs = np.linspace(bounds[0], bounds[1], points)
    ys = np.linspace(bounds[2], bounds[3], points)
    X, Y = np.meshgrid(xs, ys)
    with np.errstate(over="ignore", invalid="ignore"):
        Z = f(X, Y, np)
    i = np.unravel_index(np.nanargmin(Z), Z.shape)
    best = np.array([[X[i], Y[i]]])
    return Trajectory("grid_search", best, np.array([Z[i]]), points * points, kind="grid")


def greedy_search(f, start, step: float, evaluations: int, seed: int) -> Trajectory:
    """The lecture's greedy search: a random move around the best point so far, kept if
    it is better. Row i is the best point after i + 1 evaluations (the start is the first)."""
    rng = np.random.default_rng(seed)
    moves = rng.normal(scale=step, size=(evaluations - 1, 2))
    best = np.asarray(start, np.float64)
    best_f = float(f(best[0], best[1], np))
    points, losses = [best], [best_f]
    with np.errstate(over="ignore", invalid="ignore"):
        for move in moves:
            cand = best + move
            value = float(f(cand[0], cand[1], np))
            if value < best_f:
                best, best_f = cand, value
            points.append(best)
            losses.append(best_f)
    return Trajectory("greedy_search", np.array(points), np.array(losses), evaluations,
                      kind="greedy")


def summarize(traj: Trajectory, spec: Landscape, f, ls) -> dict:
    """Final loss and distance, steps to tolerance, whether and when it escaped the saddle."""
    points, losses = traj.points, traj.losses
    out: dict[str, Any] = {"final_loss": float(losses[-1]), "evaluations": traj.evaluations,
                           "final_x": float(points[-1, 0]), "final_y": float(points[-1, 1]),
                           "diverged": not np.all(np.isfinite(points[-1])),
                           "largest_step": float(np.max(np.linalg.norm(np.diff(points, axis=0),
                                                                       axis=1), initial=0.0))}
    if spec.minimum is not None:
        dist = np.linalg.norm(points - np.asarray(spec.minimum), axis=1)
        out["final_distance"] = float(dist[-1])
        outside = np.flatnonzero(~(dist <= ls.tolerance))
        out["reached_tolerance"] = bool(dist[-1] <= ls.tolerance)
        # The step from which on it stays within the tolerance (grid search: no steps).
        out["steps_to_tolerance"] = (int(outside[-1]) + 1 if len(outside) else 0) if (
            out["reached_tolerance"] and traj.kind != "grid") else None
    if spec.saddle is not None:
        s = np.asarray(spec.saddle)
        below = losses < float(f(s[0], s[1], np))
        away = np.linalg.norm(points - s, axis=1) > ls.escape_radius
        escaped = np.flatnonzero(below & away)
        out["escaped"] = bool(len(escaped))
        out["escape_step"] = int(escaped[0]) if len(escaped) and traj.kind != "grid" else None
        out["final_distance_to_saddle"] = float(np.linalg.norm(points[-1] - s))
    return out
