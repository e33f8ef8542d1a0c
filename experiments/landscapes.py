"""The lecture's challenges on 2D test functions, run by ``python -m experiments.landscape``.

Each landscape is a function ``f(x, y)`` with a known minimum (the saddle has none: there
the question is whether an optimizer escapes). Every optimizer of the product runs on it
through its real class: ``experiments.optim.build_optimizer`` on an ``optimizer`` option,
``apply_gradients`` on a ``tf.Variable`` of shape (2,), all steps in one compiled
``tf.function``. The lecture's two baselines run beside them on the same budget: brute-force
grid search and greedy search (random local moves, keep the best).

=================  ==========================================================  =============
landscape          f(x, y)                                                     minimum
=================  ==========================================================  =============
``saddle``         ``x² - y²``                                                 none (saddle
                                                                               at the origin)
``ill_conditioned`` ``(x² + κ y²) / 2``, κ = ``condition``                       (0, 0)
``rosenbrock``     ``(1 - x)² + 100 (y - x²)²``                                (1, 1)
``beale``          ``(1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²``  (3, 0.5)
``local_minima``   ``(x² + y²)/2 + a (2 - cos 2πx - cos 2πy)``, a = ``ripple``  (0, 0)
                   (a = 0.25: nine local minima, near (i, j) * 0.9 for i, j in {-1, 0, 1})
``cliff``          ``((x-1)² + y²)/2 + H (1 - smoothstep(x / w))``: a plateau    (1, 0)
                   of height H (x < 0) ends in a cliff face of width w whose
                   gradient, up to 1.5 H / w, throws a plain step far past it
=================  ==========================================================  =============

Each function is written once for NumPy and TensorFlow alike: ``m`` is the math namespace
(``numpy`` or ``tf.math``). This module imports neither TensorFlow nor matplotlib at import
time, so ``validate`` refuses a bad config before either loads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments import registry
from experiments.config import (OPTIMIZERS, ConfigError, TrackingSchema, _at_least,
                                validate_optimizer)

CONF = Path(__file__).resolve().parents[1] / "conf"
TAU = 2.0 * math.pi


# --------------------------------------------------------------------------- functions
def saddle(x, y, m):
    return x * x - y * y


def ill_conditioned(x, y, m, condition=50.0):
    return 0.5 * (x * x + condition * y * y)


def rosenbrock(x, y, m):
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def beale(x, y, m):
    return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2
            + (2.625 - x + x * y * y * y) ** 2)


def local_minima(x, y, m, ripple=0.25):
    return 0.5 * (x * x + y * y) + ripple * (2.0 - m.cos(TAU * x) - m.cos(TAU * y))


def cliff(x, y, m, height=100.0, width=0.25):
    u = x / width
    u = 0.5 * (m.abs(u) - m.abs(u - 1.0) + 1.0)  # clip(x / width, 0, 1), for NumPy and TF
    return 0.5 * ((x - 1.0) ** 2 + y * y) + height * (1.0 - u * u * (3.0 - 2.0 * u))


@dataclass(frozen=True)
class Landscape:
    """A test function with what is known about it."""

    function: Callable
    minimum: Optional[tuple]  # the global minimum, None where there is none (saddle)
    saddle: Optional[tuple] = None  # a saddle point to escape from
    params: tuple = ()  # keyword parameters of ``function`` (from the config)


LANDSCAPES = {
    "saddle": Landscape(saddle, None, saddle=(0.0, 0.0)),
    "ill_conditioned": Landscape(ill_conditioned, (0.0, 0.0), params=("condition",)),
    "rosenbrock": Landscape(rosenbrock, (1.0, 1.0)),
    "beale": Landscape(beale, (3.0, 0.5)),
    "local_minima": Landscape(local_minima, (0.0, 0.0), params=("ripple",)),
    "cliff": Landscape(cliff, (1.0, 0.0), params=("height", "width")),
}


def objective(cfg_landscape) -> tuple[Landscape, Callable]:
    """The landscape named by a ``landscape`` config and ``f(x, y, m)`` with its parameters."""
    spec = LANDSCAPES[cfg_landscape["name"]]
    kwargs = {k: float(cfg_landscape[k]) for k in spec.params}
    return spec, lambda x, y, m: spec.function(x, y, m, **kwargs)


# --------------------------------------------------------------------------- schemas
@dataclass
class LandscapeSchema:
    """What a user may change about one landscape (the function itself lives in code)."""

    name: str = MISSING
    start: List[float] = field(default_factory=lambda: [0.0, 0.0])
    bounds: List[float] = field(default_factory=lambda: [-2.0, 2.0, -2.0, 2.0])  # x0 x1 y0 y1
    steps: int = 500  # optimizer steps (the top-level ``steps`` overrides)
    tolerance: float = 0.01  # reached: within this distance of the minimum, to the end
    escape_radius: float = 1.0  # saddle: escaped once this far from it and below its value
    learning_rates: Dict[str, float] = field(default_factory=dict)  # per rule: sgd, adam, ...
    greedy_step: float = 0.1  # std of the greedy search's random moves


@dataclass
class IllConditionedSchema(LandscapeSchema):
    condition: float = 50.0  # κ: ratio of the Hessian's eigenvalues


@dataclass
class LocalMinimaSchema(LandscapeSchema):
    ripple: float = 0.25  # a: depth of the cosine ripples


@dataclass
class CliffSchema(LandscapeSchema):
    height: float = 100.0  # H: drop from the plateau to the foot of the cliff
    width: float = 0.25  # w: width of the cliff face, in (0, 1]; steepest slope 1.5 H / w


LANDSCAPE_SCHEMAS = {
    "ill_conditioned": IllConditionedSchema,
    "local_minima": LocalMinimaSchema,
    "cliff": CliffSchema,
}


@dataclass
class OptimizerOverrides:
    """Set on every selected optimizer that has the key (null: each keeps its own)."""

    learning_rate: Optional[float] = None
    clip_threshold: Optional[float] = None
    clip_mode: Optional[str] = None
    momentum: Optional[float] = None
    rho: Optional[float] = None
    beta_1: Optional[float] = None
    beta_2: Optional[float] = None
    epsilon: Optional[float] = None
    bias_correction: Optional[bool] = None


@dataclass
class LandscapeAppSchema:
    landscape: Any = MISSING
    optimizers: List[str] = field(default_factory=list)  # options of conf/optimizer
    steps: Optional[int] = None  # default: the landscape's own
    optimizer_overrides: OptimizerOverrides = field(default_factory=OptimizerOverrides)
    grid_points: int = 201  # grid search: points per axis (grid_points² evaluations)
    greedy_evaluations: Optional[int] = None  # default: steps + 1, an optimizer's budget
    seed: int = 0  # the greedy search's random moves
    gif_frames: int = 40
    output_dir: Optional[str] = None  # pictures and summary; default: Hydra's output folder
    tracking: TrackingSchema = field(default_factory=TrackingSchema)


def register_schemas() -> None:
    """Put the landscape schemas in Hydra's ConfigStore like ``experiments.config`` does."""
    from experiments import config

    config.register_schemas()  # the optimizer options the landscapes compose
    cs = ConfigStore.instance()
    cs.store(name="landscape_schema", node=LandscapeAppSchema)
    for name in LANDSCAPES:
        schema = LANDSCAPE_SCHEMAS.get(name, LandscapeSchema)
        node = dataclasses.make_dataclass(f"{name}_landscape", [("name", str, field(default=name))],
                                          bases=(schema,))
        cs.store(group="schema/landscape", name=name, node=node)


# --------------------------------------------------------------------------- optimizers
def optimizer_options() -> list[str]:
    return sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))


def _compose_option(option: str) -> DictConfig:
    """The ``optimizer`` option ``option`` as Hydra composes it (schema, defaults, YAML)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"+optimizer={option}"]
    if GlobalHydra.instance().is_initialized():  # inside the app or a test's compose context
        return compose(config_name=None, overrides=overrides).optimizer
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=None, overrides=overrides).optimizer


def optimizer_configs(cfg: DictConfig) -> dict[str, dict]:
    """``{option: optimizer config}`` for ``cfg.optimizers``, with the landscape's learning
    rate for its rule and ``optimizer_overrides`` (keys an optimizer lacks skip it) applied,
    each checked like ``experiments.train`` checks its optimizer."""
    options = optimizer_options()
    overrides = {k: v for k, v in OmegaConf.to_container(cfg.optimizer_overrides,
                                                          resolve=True).items()
                 if v is not None}
    rates = cfg.landscape.learning_rates
    out, used = {}, set()
    for option in cfg.optimizers:
        if option not in options:
            raise ConfigError(f"optimizers: {option!r} is not an optimizer option: choose "
                              f"from {', '.join(options)}")
        opt = _compose_option(option)
        if opt.name in rates:
            opt.learning_rate = rates[opt.name]
        for key, value in overrides.items():
            if key in opt:
                opt[key] = value
                used.add(key)
        try:
            validate_optimizer(opt)
        except ConfigError as err:
            raise ConfigError(f"optimizers: {option}: {err}") from None
        out[option] = OmegaConf.to_container(opt, resolve=True)
    unused = sorted(set(overrides) - used)
    if unused:
        raise ConfigError(f"optimizer_overrides.{unused[0]} is not a key of any selected "
                          f"optimizer ({', '.join(cfg.optimizers)})")
    return out


# --------------------------------------------------------------------------- checks
def _positive(label, value):
    if not value > 0:
        raise ConfigError(f"{label}={value} is out of range: it must be > 0")


def validate(cfg: DictConfig) -> dict[str, dict]:
    """Refuse a composed landscape config with one line; return the optimizer configs."""
    ls = cfg.landscape
    if ls.name not in LANDSCAPES:
        raise ConfigError(f"landscape.name={ls.name!r} is not valid: choose one of "
                          f"{', '.join(LANDSCAPES)}")
    if len(ls.start) != 2 or not all(math.isfinite(v) for v in ls.start):
        raise ConfigError(f"landscape.start={list(ls.start)} must be two finite numbers [x, y]")
    b = list(ls.bounds)
    if len(b) != 4 or not (b[0] < b[1] and b[2] < b[3]):
        raise ConfigError(f"landscape.bounds={b} must be [x_min, x_max, y_min, y_max] "
                          "with x_min < x_max and y_min < y_max")
    for key in ("tolerance", "escape_radius", "greedy_step"):
        _positive(f"landscape.{key}", ls[key])
    for rule, rate in ls.learning_rates.items():
        if rule not in OPTIMIZERS:
            raise ConfigError(f"landscape.learning_rates.{rule} is not an optimizer rule: "
                              f"choose from {', '.join(OPTIMIZERS)}")
        try:
            registry.rule(rule).check("learning_rate", rate,
                                      label=f"landscape.learning_rates.{rule}")
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if ls.name == "ill_conditioned":
        _at_least("landscape.condition", ls.condition, 1)
    if ls.name == "local_minima":
        _at_least("landscape.ripple", ls.ripple, 0)
    if ls.name == "cliff":
        _positive("landscape.height", ls.height)
        _positive("landscape.width", ls.width)
        if ls.width > 1:  # the face must end before the minimum at x = 1
            raise ConfigError(f"landscape.width={ls.width} is out of range: it must be <= 1")
    _at_least("landscape.steps", ls.steps, 1)
    _at_least("steps", cfg.steps, 1)
    _at_least("grid_points", cfg.grid_points, 2)
    _at_least("greedy_evaluations", cfg.greedy_evaluations, 1)
    _at_least("gif_frames", cfg.gif_frames, 2)
    _at_least("tracking.log_every_n_steps", cfg.tracking.log_every_n_steps, 1)
    if not cfg.optimizers:
        raise ConfigError("optimizers is empty: list at least one optimizer option")
    if len(set(cfg.optimizers)) != len(cfg.optimizers):
        raise ConfigError(f"optimizers={list(cfg.optimizers)} names an option twice")
    return optimizer_configs(cfg)


# --------------------------------------------------------------------------- runs
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


def _fmt(value, digits=3):
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.{digits}g}"


def markdown_table(name: str, trajectories: list[Trajectory], spec: Landscape) -> str:
    """The summary as a Markdown table, one row per method."""
    cols = ["method", "final loss"]
    if spec.minimum is not None:
        cols += ["final distance", "steps to tolerance"]
    if spec.saddle is not None:
        cols += ["escaped (step)", "final distance to saddle"]
    cols += ["largest step", "evaluations"]
    lines = [f"### {name}", "", "| " + " | ".join(cols) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for t in trajectories:
        s = t.summary
        row = [t.label, _fmt(s["final_loss"])]
        if spec.minimum is not None:
            if t.kind == "grid":  # one sweep over its grid: reached or not
                steps = "within" if s["reached_tolerance"] else "not within"
            else:
                steps = _fmt(s["steps_to_tolerance"]) if s["reached_tolerance"] else "not reached"
            row += [_fmt(s["final_distance"]), steps]
        if spec.saddle is not None:
            esc = "no" if not s["escaped"] else (
                "yes" if s["escape_step"] is None else f"yes ({s['escape_step']})")
            row += [esc, _fmt(s["final_distance_to_saddle"])]
        row += [_fmt(s["largest_step"]) if t.kind != "grid" else "–", str(s["evaluations"])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _step_metrics(traj: Trajectory, every: int):
    """(step, metrics) for every ``every``-th row and the last one."""
    last = len(traj.losses) - 1
    for t in range(len(traj.losses)):
        if t % every and t != last:
            continue
        m = {"loss": traj.losses[t], "x": traj.points[t, 0], "y": traj.points[t, 1]}
        if traj.grad_norms is not None:
            m["grad_norm"] = traj.grad_norms[t]
        yield t, m


def _summary_metrics(summary: dict) -> dict[str, float]:
    return {k: float(v) for k, v in summary.items()
            if v is not None and isinstance(v, (bool, int, float)) and k not in ("final_x", "final_y")}


def _log_child(parent, uri, tr, landscape: str, traj: Trajectory, conf: dict | None) -> None:
    """One method's nested run: its config, per-step metrics and summary."""
    from experiments import tracking

    child = tracking.RunLogger.start(
        uri, tr.experiment_name, traj.label, parent_run_id=parent.run_id,
        tags={"landscape": landscape, "kind": traj.kind, "optimizer": traj.label})
    status = "FAILED"
    try:
        child.log_params(tracking.flatten(conf) if conf else
                         {"method": traj.label, "evaluations": traj.evaluations})
        for t, metrics in _step_metrics(traj, tr.log_every_n_steps):
            child.log_metrics(metrics, t)
        final = len(traj.losses) - 1
        summary = _summary_metrics(traj.summary)
        child.log_metrics(summary, final)
        parent.log_metrics({f"{k}/{traj.label}": v for k, v in summary.items()}, final)
        status = "FINISHED"
    finally:
        child.end(status)


def _output_dir(cfg) -> Path:
    if cfg.output_dir:
        return Path(cfg.output_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(tempfile.mkdtemp(prefix="landscape-"))


def run(cfg: DictConfig, *, optimizers: dict[str, dict] | None = None,
        overrides: list[str] | None = None, sweep: dict | None = None,
        out=sys.stdout) -> dict[str, Any]:
    """Run every optimizer and both baselines on ``cfg.landscape``; track, plot, print.

    ``optimizers`` is what ``validate`` returned (composed again when None). Returns
    ``{"summaries": {method: summary}, "table": markdown, "files": [...]}`` plus
    ``run_id`` and ``tracking_uri`` when tracked.
    """
    from experiments import landscape_plots, tracking
    from experiments.optim import build_optimizer

    optimizers = optimizers if optimizers is not None else optimizer_configs(cfg)
    ls, tr = cfg.landscape, cfg.tracking
    spec, f = objective(ls)
    steps = cfg.steps or ls.steps
    start = list(ls.start)
    parent, uri = None, None
    if tr.enabled:
        uri = tracking.resolve_tracking_uri(tr.uri)
        tags = {"landscape": ls.name, "kind": "landscape", **(sweep or {}),
                **{str(k): str(v) for k, v in tr.tags.items()}}
        parent = tracking.RunLogger.start(uri, tr.experiment_name,
                                          tr.run_name or f"landscape-{ls.name}", tags=tags)
        config = OmegaConf.to_container(cfg, resolve=True)
        config["tracking"]["uri"] = tracking.redact(uri)
        config["optimizers"] = ",".join(config["optimizers"])
        config["steps"] = steps
        parent.log_params(tracking.flatten(config))
    status = "FAILED"
    try:
        results = optimize(f, start, {label: build_optimizer(conf)
                                      for label, conf in optimizers.items()}, steps)
        results.append(greedy_search(f, start, ls.greedy_step,
                                     cfg.greedy_evaluations or steps + 1, cfg.seed))
        results.append(grid_search(f, list(ls.bounds), cfg.grid_points))
        for traj in results:
            traj.summary = summarize(traj, spec, f, ls)
        table = markdown_table(f"{ls.name} ({steps} steps from {tuple(start)})", results, spec)
        folder = _output_dir(cfg)
        folder.mkdir(parents=True, exist_ok=True)
        files = landscape_plots.draw_all(folder, ls.name, f, spec, list(ls.bounds), results,
                                         cfg.gif_frames)
        (folder / "summary.md").write_text(table)
        (folder / "summary.json").write_text(json.dumps(
            {t.label: t.summary for t in results}, indent=2))
        (folder / "config.yaml").write_text(tracking.redact(OmegaConf.to_yaml(cfg, resolve=True)))
        (folder / "overrides.yaml").write_text(tracking.redact(
            OmegaConf.to_yaml(OmegaConf.create(list(overrides or [])))))
        files += [folder / "summary.md", folder / "summary.json"]
        if parent:
            for traj in results:
                _log_child(parent, uri, tr, ls.name, traj, optimizers.get(traj.label))
            if tr.log_plots:
                parent.log_artifacts([p for p in files if p.suffix in (".png", ".gif")],
                                     "plots")
            parent.log_artifacts([folder / "summary.md", folder / "summary.json"])
            parent.log_artifacts([folder / "config.yaml", folder / "overrides.yaml"], "config")
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if parent:
            parent.end(status)
    print(table, file=out)
    print(f"Pictures and summary in {folder}", file=out)
    result = {"summaries": {t.label: t.summary for t in results}, "table": table,
              "files": [str(p) for p in files], "trajectories": results}
    if parent:
        print(f"Run {parent.run_id} (landscape {ls.name}, one nested run per method) logged "
              f"to {tracking.redact(uri)} (experiment '{tr.experiment_name}').\n"
              f"See it with: {tracking.ui_command(uri)}", file=out)
        result.update(run_id=parent.run_id, tracking_uri=uri)
    return result
