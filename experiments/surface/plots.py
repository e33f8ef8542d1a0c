"""The pictures of a surface: ``lines.png``, ``contour.png``, ``paths.png`` and
``paths.gif``, drawn with ``experiments.landscape.plots``."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw(folder: Path, title: str, grids: dict, labels: list[str], frames: int,
         loss: str = "cross_entropy") -> list[Path]:
    """``lines.png``, ``contour.png``, ``paths.png`` and ``paths.gif`` of ``compute``'s
    grids in ``folder``; the contours' colour bars are in log10 of the ``loss``."""
    from experiments.landscape import plots as lp
    from experiments.core import registry
    from experiments.landscape import Trajectory
    from experiments.core.plotting import option_style, pyplot

    plt = pyplot()
    files = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100, sharey=True)
    ts = grids["line_t"]
    for label in labels:
        axes[0].plot(ts, grids[f"line/init/{label}"], label=label, **option_style(label))
    for key in grids:
        if key.startswith("line/") and not key.startswith("line/init/"):
            _, a, b = key.split("/")
            axes[1].plot(ts, grids[key], label=f"{a} → {b}")
    for ax, what in zip(axes, ("initial weights (t=0) → solution (t=1)",
                               "one solution (t=0) → another (t=1)")):
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_title(what, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("training loss")
    fig.suptitle(f"{title}: the loss along straight lines")
    fig.tight_layout()
    files.append(folder / "lines.png")
    fig.savefig(files[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=100)
    axis = grids["contour_axis"]
    X, Y = np.meshgrid(axis, axis)
    quantity = f"log10 training loss ({loss})"
    lp.filled_contours(ax, X, Y, np.log10(grids["contour"]), quantity)
    ax.plot(0, 0, marker="*", color="gold", markersize=14, markeredgecolor="black")
    ax.set_xlabel("α (filter-normalised direction δ)")
    ax.set_ylabel("β (filter-normalised direction η)")
    ax.set_title(f"{title}: log10 loss around {grids['center']}'s solution", fontsize=10)
    fig.tight_layout()
    files.append(folder / "contour.png")
    fig.savefig(files[-1])
    plt.close(fig)

    xs, ys = grids["plane_x"], grids["plane_y"]
    X, Y = np.meshgrid(xs, ys)
    explained = float(grids["plane_explained"])

    def background(ax):
        lp.filled_contours(ax, X, Y, np.log10(grids["plane"]), quantity,
                           location="bottom")
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
        ax.set_xlabel("PCA direction 1")
        ax.set_ylabel("PCA direction 2")
        ax.text(0.01, 0.01, f"the plane holds {explained:.0%} of the paths",
                transform=ax.transAxes, fontsize=7, color="white")

    trajectories = []
    for label in labels:
        rule, implementation = registry.parse_option(label)
        trajectories.append(Trajectory(label, grids[f"path/{label}"], grids[f"path_loss/{label}"],
                                       len(grids[f"path_loss/{label}"]), rule=rule,
                                       keras=implementation == "keras"))
    name = f"{title} (PCA plane)"
    files.append(lp.contour_plot(folder / "paths.png", name, None, None, None, trajectories,
                                 background=background))
    steps = max((grids[f"path_steps/{label}"] for label in labels), key=len)
    files.append(lp.paths_gif(folder / "paths.gif", name, None, None, None, trajectories,
                              frames, background=background, steps=steps))
    return files
