"""One landscape run: every method on the landscape, the summary table, the pictures and
the MLflow runs (a parent per landscape, a nested run per method)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from experiments.core import markdown

from experiments.landscape.config import optimizer_configs, selected_options
from experiments.landscape.functions import Landscape, objective
from experiments.landscape.methods import (Trajectory, greedy_search, grid_search, optimize,
                                            summarize)
from experiments.core.run_status import ended_run


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
    rows = []
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
        rows.append(row)
    return f"### {name}\n\n" + markdown.table(cols, rows, "l" + "r" * (len(cols) - 1)) + "\n"


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
    from experiments.core import tracking

    child = tracking.RunLogger.start(
        uri, tr.experiment_name, traj.label, parent_run_id=parent.run_id,
        tags={"landscape": landscape, "kind": traj.kind, "optimizer": traj.label})
    with ended_run(child):
        child.log_params(tracking.flatten(conf) if conf else
                         {"method": traj.label, "evaluations": traj.evaluations})
        for t, metrics in _step_metrics(traj, tr.log_every_n_steps):
            child.log_metrics(metrics, t)
        final = len(traj.losses) - 1
        summary = _summary_metrics(traj.summary)
        child.log_metrics(summary, final)
        parent.log_metrics({f"{k}/{traj.label}": v for k, v in summary.items()}, final)


def output_dir(cfg) -> Path:
    """Where a run writes its files: ``cfg.output_dir``, else Hydra's job folder."""
    if cfg.output_dir:
        return Path(cfg.output_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(tempfile.mkdtemp(prefix="landscape-"))


def checked_output_dir(cfg) -> Path:
    """``output_dir(cfg)``, refused (``ConfigError``) if it cannot be created or written;
    nothing is created (``create_output_dir`` does, just before the run is)."""
    from experiments.core.checks import check_folder

    folder = output_dir(cfg)
    check_folder("output_dir", folder)
    return folder


def run(cfg: DictConfig, *, optimizers: dict[str, dict] | None = None,
        overrides: list[str] | None = None, sweep: dict | None = None,
        out=sys.stdout) -> dict[str, Any]:
    """Run every optimizer and both baselines on ``cfg.landscape``; track, plot, print.

    ``optimizers`` is what ``validate`` returned (composed again when None). Returns
    ``{"summaries": {method: summary}, "table": markdown, "files": [...]}`` plus
    ``run_id`` and ``tracking_uri`` when tracked.
    """
    from experiments.landscape import plots as landscape_plots
    from experiments.core import tracking
    from experiments.core.optim import build_optimizer

    optimizers = optimizers if optimizers is not None else optimizer_configs(cfg)
    ls, tr = cfg.landscape, cfg.tracking
    spec, f = objective(ls)
    steps = cfg.steps or ls.steps
    start = list(ls.start)
    parent, uri = None, None
    folder = checked_output_dir(cfg)  # ConfigError before any run or folder exists
    if tr.enabled:
        uri = tracking.resolve_tracking_uri(tr.uri)
        tracking.probe_store(uri)  # TrackingUnavailable before any run or picture exists
    folder.mkdir(parents=True, exist_ok=True)
    with ended_run(None) as tracked:  # the run exists only inside the block that ends it
        if tr.enabled:
            tags = {"landscape": ls.name, "kind": "landscape", **(sweep or {}),
                    **{str(k): str(v) for k, v in tr.tags.items()}}
            parent = tracked.logger = tracking.RunLogger.start(
                uri, tr.experiment_name, tr.run_name or f"landscape-{ls.name}", tags=tags)
            config = OmegaConf.to_container(cfg, resolve=True)
            config["tracking"]["uri"] = tracking.redact(uri)
            config["optimizers"] = ",".join(selected_options(cfg))
            config["steps"] = steps
            parent.log_params(tracking.flatten(config))
        schedule = OmegaConf.to_container(cfg.schedule, resolve=True)
        results = optimize(f, start, {label: build_optimizer(conf, schedule)
                                      for label, conf in optimizers.items()}, steps)
        for traj in results:
            traj.rule = optimizers[traj.label]["name"]
            traj.keras = optimizers[traj.label]["implementation"] == "keras"
        results.append(greedy_search(f, start, ls.greedy_step,
                                     cfg.greedy_evaluations or steps + 1, cfg.seed))
        results.append(grid_search(f, list(ls.bounds), cfg.grid_points))
        for traj in results:
            traj.summary = summarize(traj, spec, f, ls)
        table = markdown_table(f"{ls.name} ({steps} steps from {tuple(start)})", results, spec)
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
    print(table, file=out)
    print(f"Pictures and summary in {folder}", file=out)
    result = {"summaries": {t.label: t.summary for t in results}, "table": table,
              "files": [str(p) for p in files], "trajectories": results}
    if parent:
        print(f"Run {parent.run_id} (landscape {ls.name}, one nested run per method) logged "
              f"to {tracking.redact(uri)} (experiment '{tr.experiment_name}').\n"
              f"{tracking.see_it(uri, run_id=parent.run_id)}", file=out)
        result.update(run_id=parent.run_id, tracking_uri=uri)
    return result
