"""The math of a loss surface: filter-normalised and PCA directions, the loss along
lines and on grids around a solution (``compute``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


LINE_RANGE = (-0.25, 1.25)


def _filter_norms(w: np.ndarray, axes: tuple) -> np.ndarray:
    return np.sqrt(np.sum(np.square(w), axis=axes, keepdims=True))


def filter_normalized_direction(theta: np.ndarray, shapes, rng) -> np.ndarray:
    """A random Gaussian direction with every filter rescaled to θ's filter norm.

    A filter is a slice along a kernel's last axis (a dense neuron's incoming weights, a
    conv output channel); 1-D variables (biases) get a zero direction (Li et al. 2018).
    """
    parts, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        w = theta[offset:offset + size].reshape(shape)
        offset += size
        if len(shape) < 2:
            parts.append(np.zeros(size))
            continue
        d = rng.standard_normal(shape)
        axes = tuple(range(len(shape) - 1))
        d *= _filter_norms(w, axes) / (_filter_norms(d, axes) + 1e-12)
        parts.append(d.ravel())
    return np.concatenate(parts)


def pca_directions(paths: list[np.ndarray], origin: np.ndarray) -> tuple[np.ndarray, float]:
    """The two leading right singular vectors (orthonormal rows) of every path's
    ``θ_i − origin`` stacked, and the fraction of the squared distance they explain."""
    rows = np.concatenate([p - origin for p in paths])
    _, s, vt = np.linalg.svd(rows, full_matrices=False)
    explained = float(np.sum(s[:2] ** 2) / max(np.sum(s ** 2), 1e-300))
    return vt[:2], explained


def loss_grid(value, origin, d1, d2, xs, ys) -> np.ndarray:
    """``Z[i, j] = value(origin + xs[j] d1 + ys[i] d2)`` (rows are y, as matplotlib's)."""
    return np.array([[value(origin + x * d1 + y * d2) for x in xs] for y in ys])


def loss_line(value, a, b, ts) -> np.ndarray:
    return np.array([value((1.0 - t) * a + t * b) for t in ts])


@dataclass
class WeightPath:
    """One optimizer's kept weights: steps (k,) and flat weights (k, n)."""

    label: str
    steps: np.ndarray
    theta: np.ndarray


def evaluations(paths: list[WeightPath], line_points=51, grid_points=31,
                plane_points=31) -> int:
    """How many losses ``compute`` evaluates (for the progress display)."""
    k = len(paths)
    return (line_points * (k + k * (k - 1) // 2) + grid_points ** 2 + plane_points ** 2
            + sum(len(p.theta) for p in paths))


def compute(loss, paths: list[WeightPath], *, center: str | None = None, line_points=51,
            grid_points=31, span=1.0, plane_points=31, plane_margin=0.25, seed=0,
            tick=None) -> dict:
    """Every grid of the module docstring, as arrays (what ``surface.npz`` holds): the
    lines (``line/...``), ``contour`` (rows: β) with its axis and two directions, the
    ``plane`` on ``plane_directions`` from the shared start, each path's coordinates,
    losses and steps there. ``tick()`` is called after every loss evaluated."""

    def value(theta):
        result = loss.value(theta)
        if tick:
            tick()
        return result

    out: dict[str, np.ndarray] = {}
    ts = np.linspace(*LINE_RANGE, line_points)
    out["line_t"] = ts
    for p in paths:
        out[f"line/init/{p.label}"] = loss_line(value, p.theta[0], p.theta[-1], ts)
    for i, p in enumerate(paths):
        for q in paths[i + 1:]:
            out[f"line/{p.label}/{q.label}"] = loss_line(value, p.theta[-1], q.theta[-1], ts)
    centre = next(p for p in paths if p.label == (center or paths[0].label))
    rng = np.random.default_rng(seed)
    star = centre.theta[-1].astype(np.float64)
    d1 = filter_normalized_direction(star, loss.shapes, rng)
    d2 = filter_normalized_direction(star, loss.shapes, rng)
    axis = np.linspace(-span, span, grid_points)
    out["contour_axis"] = axis
    out["contour_directions"] = np.stack([d1, d2])
    out["contour"] = loss_grid(value, star, d1, d2, axis, axis)
    origin = paths[0].theta[0].astype(np.float64)
    directions, explained = pca_directions([p.theta.astype(np.float64) for p in paths],
                                           origin)
    out["plane_directions"] = directions
    out["plane_explained"] = np.array(explained)
    coords = {p.label: (p.theta - origin) @ directions.T for p in paths}
    every = np.concatenate(list(coords.values()))
    low, high = every.min(axis=0), every.max(axis=0)
    pad = plane_margin * np.maximum(high - low, 1e-3)
    xs = np.linspace(low[0] - pad[0], high[0] + pad[0], plane_points)
    ys = np.linspace(low[1] - pad[1], high[1] + pad[1], plane_points)
    out["plane_x"], out["plane_y"] = xs, ys
    out["plane"] = loss_grid(value, origin, directions[0], directions[1], xs, ys)
    for p in paths:
        out[f"path/{p.label}"] = coords[p.label]
        out[f"path_loss/{p.label}"] = np.array([value(t) for t in p.theta])
        out[f"path_steps/{p.label}"] = p.steps
    out["center"] = np.array(centre.label)
    return out
