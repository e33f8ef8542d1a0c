"""The comparison's plots: mean over seeds with a band, one colour per rule."""

from __future__ import annotations

import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from experiments.compare.summary import (RunSummary, group_runs, rule_identity, rule_rank,
                                         tag_or_param)
from experiments.core.plotting import pyplot, rule_style

# -------------------------------------------------------------------------------- plots


def aggregate(curves: Sequence[tuple[np.ndarray, np.ndarray]], band: str):
    """Mean over runs at each x any of them has, and the band: min–max or mean ± std."""
    xs = np.unique(np.concatenate([c[0] for c in curves]))
    grid = np.full((len(curves), len(xs)), np.nan)
    for i, (x, y) in enumerate(curves):
        grid[i, np.searchsorted(xs, x)] = y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(grid, axis=0)
        if band == "std":
            std = np.nan_to_num(np.nanstd(grid, axis=0))
            return xs, mean, mean - std, mean + std
        return xs, mean, np.nanmin(grid, axis=0), np.nanmax(grid, axis=0)


@dataclass(frozen=True)
class Panel:
    metric: str
    ylabel: str
    log: bool = True


PLOTS = {
    "loss_step.png": ("Training loss per step", "optimizer step",
                      [Panel("loss", "cross-entropy (mini-batch)")]),
    "loss_epoch.png": ("Loss and accuracy per epoch", "epoch",
                       [Panel("epoch_loss", "training loss"), Panel("val_loss", "validation loss"),
                        Panel("val_accuracy", "validation accuracy", log=False)]),
    "grad_norm.png": ("Global gradient norm", "optimizer step",
                      [Panel("grad_norm", "‖g‖ (before clipping)")]),
    "effective_lr.png": ("Effective learning rate lr/(δ+√r), mean over weights",
                         "optimizer step", [Panel("effective_lr/mean", "effective learning rate")]),
}


def make_plots(summaries: Sequence[RunSummary], keys: Sequence[str], out: Path, band: str,
               smooth: int, subtitle: str) -> tuple[list[Path], list[str]]:
    """The PNGs written, and a line for each plot that had no data."""
    plt = pyplot()
    ordered = sorted((s for s in summaries if s.finished),
                     key=lambda s: (tuple(tag_or_param(s, k) for k in keys[1:]),
                                    rule_rank(rule_identity(s))))
    groups = {" ".join(g): members for g, members in group_runs(ordered, keys).items()}
    written, skipped = [], []
    band_text = "min–max" if band == "minmax" else "± std"
    for filename, (title, xlabel, panels) in PLOTS.items():
        if not any(p.metric in s.curves for p in panels for m in groups.values() for s in m):
            skipped.append(f"no run has '{panels[0].metric}': {filename} not drawn")
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.6), dpi=100,
                                 squeeze=False)
        for ax, panel in zip(axes[0], panels):
            for label, members in groups.items():
                curves = [m.curves[panel.metric] for m in members if panel.metric in m.curves]
                if not curves:
                    continue
                x, mean, lo, hi = aggregate(curves, band)
                style = {**rule_style(*rule_identity(members[0])), "linewidth": 1.2}
                ax.plot(x, mean, label=f"{label} (n={len(curves)})", **style)
                ax.fill_between(x, lo, hi, color=style["color"], alpha=0.12, lw=0)
            if panel.log:
                ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(panel.ylabel)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, ncol=2 if len(groups) > 6 else 1)
        smoothing = f"; {smooth}-point trailing mean" if smooth > 1 and xlabel != "epoch" else ""
        fig.suptitle("\n".join([title, textwrap.fill(
            f"{subtitle}; mean over seeds, band {band_text}{smoothing}", 72 * len(panels))]),
            fontsize=10)
        fig.tight_layout()
        path = out / filename
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written, skipped
