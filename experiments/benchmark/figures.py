"""The benchmark's figures, from the trial table: performance profiles, budget curves,
learning-rate sensitivity and time to target per workload (``write_report`` calls them)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from experiments.core import plotting
from experiments.benchmark import scoring


def _workload_grid(frame: pd.DataFrame):
    """One small panel per workload of ``frame``, four to a row: ``plt, fig, axes`` and
    the cells ``(ax, workload, the workload's rows)``."""
    plt = plotting.pyplot()
    workloads = list(dict.fromkeys(frame["workload"]))
    cols = min(4, len(workloads))
    rows = math.ceil(len(workloads) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False,
                             dpi=100)
    cells = [(ax, w, frame[frame["workload"] == w]) for ax, w in zip(axes.flat, workloads)]
    return plt, fig, axes, cells


def _finish(plt, fig, axes, n: int, ylabel: str, path: Path) -> None:
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _style(optimizer: str) -> dict:
    """The lab's look of a ``conf/optimizer`` option: its rule's colour, Keras dashed."""
    return plotting.option_style(optimizer)


def _keras(optimizer: str) -> bool:
    return optimizer.startswith("keras_")


def profile_plot(results: pd.DataFrame, path: Path, r_max: float = scoring.R_MAX) -> None:
    """ρ(τ) per optimizer: rows steps / seconds, columns the rulesets."""
    plt = plotting.pyplot()
    rulesets = list(dict.fromkeys(results["ruleset"]))
    fig, axes = plt.subplots(2, len(rulesets), figsize=(6 * len(rulesets), 8), squeeze=False,
                             dpi=100)
    taus = np.linspace(1.0, r_max, 301)
    for i, col in enumerate(("steps_to_target", "seconds_to_target")):
        times = scoring.times_table(results, col)
        for j, ruleset in enumerate(rulesets):
            ax = axes[i][j]
            block = times.xs(ruleset, level="ruleset")
            rho = scoring.profile(scoring.ratios(block), taus)
            for optimizer, row in rho.iterrows():
                ax.step(taus, row.to_numpy(), where="post", label=optimizer,
                        **_style(optimizer))
            ax.set_title(f"{ruleset}: time in {col.split('_')[0]}")
            ax.set_xlabel("τ (ratio to the best optimizer)")
            ax.set_ylabel("ρ(τ): share of workloads")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _workload_panel(ax, workload: str, targets: Mapping[str, float | None],
                    xlabel: str) -> None:
    """A workload's panel: its target as a dotted line, its name, the x label, a grid."""
    if targets.get(workload) is not None:
        ax.axhline(targets[workload], color="k", lw=0.8, ls=":")
    ax.set_title(workload, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)


def budget_plot(curves: pd.DataFrame, path: Path,
                targets: Mapping[str, float | None]) -> None:
    """Expected best validation value after k trials, one panel per workload."""
    plt, fig, axes, cells = _workload_grid(curves)
    for ax, w, block in cells:
        for optimizer, c in block.groupby("optimizer", sort=False):
            style = _style(optimizer)
            ax.plot(c["k"], c["mean"], marker=".", label=optimizer, **style)
            ax.fill_between(c["k"], c["low"], c["high"], color=style["color"], alpha=0.06)
        _workload_panel(ax, w, targets, "trials k")
    _finish(plt, fig, axes, len(cells), "expected best validation value", path)


def sensitivity_plot(results: pd.DataFrame, path: Path,
                     targets: Mapping[str, float | None],
                     maximize: Mapping[str, bool] | None = None) -> None:
    """Best validation value against the learning rate, every trial, one panel per workload."""
    plt, fig, axes, cells = _workload_grid(results)
    for ax, w, block in cells:
        for optimizer, g in block.groupby("optimizer", sort=False):
            style = _style(optimizer)
            g = g.sort_values("learning_rate")
            ax.plot(g["learning_rate"], g["best_value"], marker="x" if _keras(optimizer)
                    else "o", ls="none", ms=4, color=style["color"], label=optimizer)
            dv = g[g["diverged"].astype(bool)]
            ax.plot(dv["learning_rate"], dv["best_value"], marker="v", ls="none", ms=6,
                    mfc="none", color="k")
        ax.set_xscale("log")
        if maximize is not None and not maximize.get(w, True):
            ax.set_yscale("log")  # losses: the start value and the target are decades apart
        _workload_panel(ax, w, targets, "learning rate η")
    _finish(plt, fig, axes, len(cells), "best validation value", path)


def time_plot(results: pd.DataFrame, path: Path) -> None:
    """Steps to target per workload and optimizer (bars; a cross where never reached)."""
    plt = plotting.pyplot()
    times = scoring.times_table(results, "steps_to_target")
    rulesets = list(dict.fromkeys(results["ruleset"]))
    workloads = list(times.columns)
    fig, axes = plt.subplots(len(rulesets), 1, figsize=(max(8, 1.6 * len(workloads)),
                                                        3.6 * len(rulesets)),
                             squeeze=False, dpi=100)
    for ax, ruleset in zip(axes[:, 0], rulesets):
        block = times.xs(ruleset, level="ruleset")
        n = len(block)
        width = 0.8 / max(n, 1)
        for i, (optimizer, row) in enumerate(block.iterrows()):
            x = np.arange(len(workloads)) + (i - n / 2 + 0.5) * width
            v = row[workloads].to_numpy(float)
            style = _style(optimizer)
            ax.bar(x[np.isfinite(v)], v[np.isfinite(v)], width, color=style["color"],
                   hatch="//" if _keras(optimizer) else None, label=optimizer)
            ax.plot(x[~np.isfinite(v)], np.zeros((~np.isfinite(v)).sum()), "x",
                    color=style["color"])
        ax.set_xticks(np.arange(len(workloads)), workloads, fontsize=8)
        ax.set_ylabel("steps to target")
        ax.set_title(f"{ruleset}: median over studies (x: not reached)")
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=6, ncol=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
