"""One surface run: train (or read back) the paths, compute the grids, draw, track."""

from __future__ import annotations

import io
import sys
import tempfile
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from experiments.core.checks import ConfigError
from experiments.core.run_status import ended_run
from experiments.surface.config import config_digest, validate
from experiments.surface.grids import WeightPath, compute, evaluations
from experiments.surface.plots import draw


def _read_runs(uri: str, run_ids: list[str]) -> tuple[DictConfig, list[WeightPath]]:
    """(the first run's train config, every run's kept weights) from the store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    paths, first = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for run_id in run_ids:
            try:
                config = client.download_artifacts(run_id, "config/config.yaml", tmp)
                weights = client.download_artifacts(run_id, "weights/trajectory.npz", tmp)
            except Exception as err:  # mlflow raises several kinds for a missing run/file
                raise ConfigError(f"runs: {run_id} has no config/config.yaml and "
                                  f"weights/trajectory.npz (train it with "
                                  f"trainer.weights_every_n_steps > 0): {err}") from None
            train = OmegaConf.load(config)
            first = first or train
            if OmegaConf.to_container(train.model) != OmegaConf.to_container(first.model):
                raise ConfigError(f"runs: {run_id} trains another model than {run_ids[0]}")
            data = np.load(weights)
            label = client.get_run(run_id).data.tags.get("optimizer", run_id[:8])
            if label in [p.label for p in paths]:
                label = f"{label}-{run_id[:6]}"
            paths.append(WeightPath(label, data["steps"], data["theta"]))
    return first, paths


def run(cfg: DictConfig, *, train: dict[str, DictConfig] | None = None,
        out=sys.stdout) -> dict[str, Any]:
    """Train (or read) the paths, compute the grids, draw, track; print where it all went.

    Returns ``{"grids": ..., "files": [...], "paths": [WeightPath], "seconds": ...}`` plus
    ``run_id``/``tracking_uri`` when tracked and the training runs' ids (``runs``).
    """
    from experiments.core import tracking
    from experiments.landscape.pipeline import checked_output_dir
    from experiments.core.progress import Progress

    start = time.perf_counter()
    train = train if train is not None else validate(cfg)
    tr = cfg.tracking
    folder = checked_output_dir(cfg)  # ConfigError before any run or folder exists
    uri = tracking.resolve_tracking_uri(tr.uri) if tr.enabled else None
    if uri:
        tracking.probe_store(uri)
    run_ids = list(cfg.runs)
    if run_ids:  # a missing run is refused before the surface's own run exists
        base, paths = _read_runs(uri, run_ids)
    folder.mkdir(parents=True, exist_ok=True)
    parent = None
    if uri:
        parent = tracking.RunLogger.start(
            uri, tr.experiment_name, tr.run_name or f"surface-{cfg.dataset.name}-"
            f"{cfg.model.name}", tags={"kind": "surface", "config_hash": config_digest(cfg),
                                       **{str(k): str(v) for k, v in tr.tags.items()}})
    with ended_run(parent):
        if not run_ids:
            from experiments.train.pipeline import run as train_run

            base, paths = next(iter(train.values())), []
            for option, train_cfg in train.items():
                if parent:
                    train_cfg.tracking.tags = {**train_cfg.tracking.tags,
                                               "mlflow.parentRunId": parent.run_id}
                result = train_run(train_cfg, out=io.StringIO())
                run_note = f", run {result['run_id']}" if "run_id" in result else ""
                print(f"Trained {option}: {result['steps']} steps, validation loss "
                      f"{result['val_loss']:.4f}{run_note}", file=out)
                steps, weights = result["weights"]
                paths.append(WeightPath(option, np.asarray(steps), np.stack(weights)))
                if "run_id" in result:
                    run_ids.append(result["run_id"])
        shared = all(np.array_equal(p.theta[0], paths[0].theta[0]) for p in paths)
        loss = _flat_loss(base, cfg.samples)
        labels = [p.label for p in paths]
        center = (labels[list(cfg.runs).index(cfg.center)] if cfg.center in cfg.runs
                  else cfg.center)
        total = evaluations(paths, cfg.line_points, cfg.grid_points, cfg.plane_points)
        with Progress(total, "surface", enabled=cfg.trainer.progress, unit="loss") as bar:
            grids = compute(loss, paths, center=center, line_points=cfg.line_points,
                            grid_points=cfg.grid_points, span=cfg.span,
                            plane_points=cfg.plane_points, plane_margin=cfg.plane_margin,
                            seed=cfg.seed, tick=bar.update)
        np.savez_compressed(folder / "surface.npz", **grids)
        title = f"{base.model.name} on {base.dataset.name}"
        files = draw(folder, title, grids, labels, cfg.gif_frames,
                     base.trainer.get("loss", "cross_entropy")) + [folder / "surface.npz"]
        seconds = time.perf_counter() - start
        if parent:
            config = OmegaConf.to_container(cfg, resolve=True)
            config["tracking"]["uri"] = tracking.redact(uri)
            config["optimizers"] = ",".join(config["optimizers"])
            config["runs"] = ",".join(run_ids)
            parent.log_params(tracking.flatten(config))
            parent.set_tags({"shared_init": shared})
            parent.log_metrics({"plane_explained": float(grids["plane_explained"]),
                                "surface_seconds": seconds,
                                **{f"final_loss/{p.label}": float(grids[f"path_loss/{p.label}"][-1])
                                   for p in paths}}, step=0)
            if tr.log_plots:
                parent.log_artifacts([f for f in files if f.suffix in (".png", ".gif")],
                                     "plots")
            parent.log_artifacts([folder / "surface.npz"], "data")
    if not shared:
        print("Note: the paths do not start from the same weights; the PCA plane is centred "
              f"on {paths[0].label}'s start.", file=out)
    print(f"Surfaces of {', '.join(labels)} ({title}) in {seconds:.0f} s: pictures and grids "
          f"in {folder}", file=out)
    result = {"grids": grids, "files": [str(f) for f in files], "paths": paths,
              "seconds": seconds, "runs": run_ids, "shared_init": shared}
    if parent:
        print(f"Run {parent.run_id} logged to {tracking.redact(uri)} (experiment "
              f"'{tr.experiment_name}').\n{tracking.see_it(uri, run_id=parent.run_id)}", file=out)
        result.update(run_id=parent.run_id, tracking_uri=uri)
    return result


def _flat_loss(train: DictConfig, samples: int):
    """The training loss of ``train``'s model and data as a ``FlatLoss``."""
    from experiments.curvature import FlatLoss, subset
    from experiments.data import load_dataset
    from experiments.models import build_model

    data = OmegaConf.to_container(train.dataset, resolve=True)
    splits = load_dataset(data.pop("name"), **data)
    params = OmegaConf.to_container(train.model, resolve=True)
    model = build_model(params.pop("name"), splits.input_shape, splits.num_classes, **params)
    rows = subset(len(splits.x_train), samples, int(train.trainer.seed))
    return FlatLoss(model, splits.x_train[rows], splits.y_train[rows],
                    train.trainer.get("loss", "cross_entropy"))
