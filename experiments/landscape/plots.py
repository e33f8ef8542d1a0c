"""Pictures of a landscape run: every method's path on the contour plot, the loss per step,
and an animated GIF of the paths (matplotlib, written with pillow).

An optimizer and its Keras built-in share a colour (custom solid, Keras dashed), so a gap
between the two lines of a colour is a finding; the baselines are drawn in black.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.core.plotting import pyplot, rule_style


def _style(traj) -> dict:
    if traj.kind == "greedy":
        return {"color": "black", "linestyle": ":", "linewidth": 1.2}
    return rule_style(traj.rule, traj.keras)


def filled_contours(ax, X, Y, Z, label: str, location: str = "right"):
    """Filled contours of the grid ``Z`` with levels at quantiles of its finite values,
    and a colour bar naming the quantity (``label``) at ``location`` of the axes.

    The levels crowd near the minimum (one colour per band, so does the interest); the
    colour bar gives every band the same length and ticks the values of every fourth
    level, so its scale reads as the quantiles it is.
    """
    from matplotlib.colors import BoundaryNorm
    from matplotlib.ticker import FormatStrFormatter

    finite = Z[np.isfinite(Z)]
    levels = np.unique(np.quantile(finite, np.linspace(0, 1, 25)))
    norm = BoundaryNorm(levels, 256)
    filled = ax.contourf(X, Y, np.clip(Z, levels[0], levels[-1]), levels=levels,
                         cmap="viridis", norm=norm, alpha=0.85)
    ax.contour(X, Y, Z, levels=levels, colors="white", linewidths=0.3, alpha=0.5)
    horizontal = location in ("top", "bottom")
    bar = ax.figure.colorbar(filled, ax=ax, location=location, spacing="uniform",
                             ticks=levels[::4], fraction=0.05 if horizontal else 0.046,
                             pad=0.15 if horizontal else 0.03)
    bar.set_label(f"{label} (bands at quantiles of the grid)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    (bar.ax.xaxis if horizontal else bar.ax.yaxis).set_major_formatter(
        FormatStrFormatter("%.3g"))
    return bar


def _background(ax, f, spec, bounds, grid=241):
    """Filled contours of f over ``bounds``, the minimum and saddle marked."""

    xs = np.linspace(bounds[0], bounds[1], grid)
    ys = np.linspace(bounds[2], bounds[3], grid)
    X, Y = np.meshgrid(xs, ys)
    with np.errstate(over="ignore", invalid="ignore"):
        Z = f(X, Y, np)
    filled_contours(ax, X, Y, Z, "f(x, y)", location="bottom")
    if spec.minimum is not None:
        ax.plot(*spec.minimum, marker="*", color="gold", markersize=16,
                markeredgecolor="black", linestyle="none", label="minimum", zorder=5)
    if spec.saddle is not None:
        ax.plot(*spec.saddle, marker="X", color="red", markersize=11,
                markeredgecolor="white", linestyle="none", label="saddle point", zorder=5)
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _paths(trajectories):
    return [t for t in trajectories if t.kind != "grid"]


def _grid_best(ax, trajectories):
    for t in trajectories:
        if t.kind == "grid":
            ax.plot(*t.points[0], marker="P", color="black", markersize=10, linestyle="none",
                    markeredgecolor="white",
                    label=f"grid search best ({t.evaluations} evaluations)", zorder=6)


def contour_plot(path: Path, name, f, spec, bounds, trajectories, background=None) -> Path:
    """The paths over the contours; ``background(ax)``, when given, draws these instead
    of f's (a precomputed grid: ``python -m experiments.surface``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    (background or (lambda ax: _background(ax, f, spec, bounds)))(ax)
    for t in _paths(trajectories):
        ax.plot(t.points[:, 0], t.points[:, 1], label=t.label, **_style(t))
        ax.plot(*t.points[-1], marker="o", markersize=4, color=_style(t)["color"])
    start = trajectories[0].points[0]
    ax.plot(*start, marker="o", color="white", markeredgecolor="black", markersize=8,
            linestyle="none", label="start", zorder=6)
    _grid_best(ax, trajectories)
    ax.set_title(f"{name}: optimizer paths")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def loss_plot(path: Path, name, f, spec, trajectories) -> Path:
    """Loss per step; above the known minimum on a log axis, else on a symlog one."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    floor = None
    if spec.minimum is not None:
        floor = float(f(spec.minimum[0], spec.minimum[1], np))
    for t in _paths(trajectories):
        y = t.losses if floor is None else np.maximum(t.losses - floor, 1e-12)
        ax.plot(np.arange(len(y)), y, label=t.label, **_style(t))
    for t in trajectories:
        if t.kind == "grid":
            best = t.losses[0] if floor is None else max(t.losses[0] - floor, 1e-12)
            ax.axhline(best, color="black", linewidth=0.8, linestyle="-.",
                       label=f"grid search best ({t.evaluations} evaluations)")
    if floor is None:
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylabel("f(x, y)")
    else:
        ax.set_yscale("log")
        ax.set_ylabel("f(x, y) - f(minimum)")
    ax.set_xlabel("step (greedy search: evaluation)")
    ax.set_title(f"{name}: loss per step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def paths_gif(path: Path, name, f, spec, bounds, trajectories, frames: int,
              background=None, steps=None) -> Path:
    """The paths growing step by step, ``frames`` frames, as an animated GIF.

    The still parts (contours, legend, axes) are drawn once; every frame restores them and
    draws only the paths (matplotlib's blitting), and pillow writes the frames.
    ``background`` as in ``contour_plot``; ``steps[k]`` is the step of row k (default k).
    """
    plt = pyplot()
    from PIL import Image

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=72)
    (background or (lambda ax: _background(ax, f, spec, bounds, grid=161)))(ax)
    _grid_best(ax, trajectories)
    moving = _paths(trajectories)
    lines = [ax.plot([], [], label=t.label, animated=True, **_style(t))[0]
             for t in moving]
    heads = [ax.plot([], [], marker="o", markersize=5, animated=True,
                     color=_style(t)["color"])[0] for t in moving]
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    title = ax.set_title(" ")
    fig.tight_layout()
    title.set_animated(True)
    fig.canvas.draw()
    still = fig.canvas.copy_from_bbox(fig.bbox)
    last = max(len(t.losses) for t in moving) - 1
    images = []
    for step in np.unique(np.linspace(0, last, frames).round().astype(int)):
        fig.canvas.restore_region(still)
        for t, line, head in zip(moving, lines, heads):
            k = min(step, len(t.points) - 1) + 1
            line.set_data(t.points[:k, 0], t.points[:k, 1])
            head.set_data(t.points[k - 1:k, 0], t.points[k - 1:k, 1])
            ax.draw_artist(line)
            ax.draw_artist(head)
        title.set_text(f"{name}: step {step if steps is None else steps[step]}")
        ax.draw_artist(title)
        rgba = np.asarray(fig.canvas.buffer_rgba())
        images.append(Image.fromarray(rgba[..., :3].copy()))
    plt.close(fig)
    # One palette for all frames, from the last (it has every path), without dithering.
    palette = images[-1].quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=120, loop=0)
    return path


def draw_all(folder: Path, name, f, spec, bounds, trajectories, frames: int) -> list[Path]:
    """The three pictures of one landscape run, written into ``folder``."""
    return [contour_plot(folder / f"{name}_paths.png", name, f, spec, bounds, trajectories),
            loss_plot(folder / f"{name}_loss.png", name, f, spec, trajectories),
            paths_gif(folder / f"{name}_paths.gif", name, f, spec, bounds, trajectories,
                      frames)]
