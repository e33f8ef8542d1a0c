"""Loss surfaces of trained networks (``python -m experiments.surface``; Li et al. 2018).

The optimizers of ``optimizers`` are trained from one shared initialisation (the same
``trainer.seed``) with ``trainer.weights_every_n_steps`` keeping their weights along the
way, or existing runs are read back by id (``runs``: their ``config/config.yaml`` and
``weights/trajectory.npz``). On the training loss (``trainer.loss``, over ``samples``
training examples) it then computes:

- ``lines``: the loss along the straight line from the initial weights to each solution
  and between every two solutions, at ``t`` in [-0.25, 1.25] (Goodfellow et al. 2015);
- ``contour``: f(θ* + αδ + βη) on a ``grid_points``² grid over [-span, span]² around the
  ``center`` optimizer's solution θ*, with random directions δ, η **filter-normalised**:
  every filter (the last axis of a kernel: a dense neuron, a conv output channel) of the
  direction is rescaled to the norm of the same filter of θ*, biases are zeroed;
- ``plane``: the two principal directions of all paths (θ_i − θ_0, shared between the
  optimizers; orthonormal, from an SVD), the loss on that plane and every path projected
  on it.

Grids go to ``surface.npz``; pictures (``lines.png``, ``contour.png``, ``paths.png``,
``paths.gif``) are drawn by ``experiments.landscape_plots``.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments.config import (MAX_SEED, ConfigError, TrackingSchema, TrainerSchema,
                                check_range)
from experiments.config import validate as validate_train
from experiments.run_status import ended_run

LINE_RANGE = (-0.25, 1.25)


# --------------------------------------------------------------------------- config
@dataclass
class SurfaceSchema:
    dataset: Any = MISSING
    model: Any = MISSING
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    optimizers: List[str] = field(default_factory=lambda: ["sgd", "momentum", "adam"])
    runs: List[str] = field(default_factory=list)  # run ids to read instead of training
    learning_rates: Dict[str, float] = field(default_factory=dict)  # option -> η
    samples: int = 0  # training examples the loss is evaluated on (0: all)
    line_points: int = 51
    grid_points: int = 31
    span: float = 1.0
    plane_points: int = 31
    plane_margin: float = 0.25  # around the projected paths, as a fraction of their extent
    center: Optional[str] = None  # whose solution the contour is drawn around (default first)
    seed: int = 0  # the random directions
    gif_frames: int = 40
    output_dir: Optional[str] = None


def register_schemas() -> None:
    from experiments.config import register_schemas as register_train

    register_train()
    ConfigStore.instance().store(name="surface_schema", node=SurfaceSchema)


def _compose_optimizer(option: str) -> DictConfig:
    from experiments.landscapes.config import compose_option, optimizer_options

    if option not in optimizer_options():
        raise ConfigError(f"optimizers: {option!r} is not an optimizer option: choose from "
                          f"{', '.join(optimizer_options())}")
    return compose_option(option)


def train_configs(cfg: DictConfig) -> dict[str, DictConfig]:
    """``{option: the experiments.train config that trains it}``, each validated."""
    out = {}
    for option in cfg.optimizers:
        opt = _compose_optimizer(option)
        if option in cfg.learning_rates:
            opt.learning_rate = cfg.learning_rates[option]
        train = OmegaConf.create({
            "optimizer": opt, "dataset": cfg.dataset, "model": cfg.model,
            "trainer": cfg.trainer, "tracking": cfg.tracking})
        train.tracking.run_name = f"{option}-surface"
        try:
            validate_train(train)
        except ConfigError as err:
            raise ConfigError(f"optimizers: {option}: {err}") from None
        out[option] = train
    return out


def validate(cfg: DictConfig) -> dict[str, DictConfig]:
    """Refuse a bad surface config with one line; return ``train_configs`` (empty when
    ``runs`` are read instead)."""
    for key, low in (("line_points", 2), ("grid_points", 2), ("plane_points", 2),
                     ("gif_frames", 1), ("samples", 0)):
        check_range(key, cfg[key], low=low)
    for key in ("span", "plane_margin"):
        check_range(key, cfg[key], low=0, low_open=True)
    check_range("seed", cfg.seed, low=0, high=MAX_SEED)
    labels = list(cfg.runs) or list(cfg.optimizers)
    if not labels:
        raise ConfigError("optimizers is empty and no runs are given: name at least one")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"optimizers/runs name one twice: {', '.join(labels)}")
    if cfg.runs:
        if not cfg.tracking.enabled:
            raise ConfigError("runs: reading runs needs tracking (they are in the store)")
        if cfg.center is not None and cfg.center not in labels:
            raise ConfigError(f"center={cfg.center!r} is not one of runs: {', '.join(labels)}")
        return {}
    if cfg.center is not None and cfg.center not in labels:
        raise ConfigError(f"center={cfg.center!r} is not one of optimizers: "
                          f"{', '.join(labels)}")
    unknown = sorted(set(cfg.learning_rates) - set(labels))
    if unknown:
        raise ConfigError(f"learning_rates.{unknown[0]} is not one of optimizers: "
                          f"{', '.join(labels)}")
    if cfg.trainer.weights_every_n_steps < 1:
        raise ConfigError(f"trainer.weights_every_n_steps={cfg.trainer.weights_every_n_steps}"
                          f" is out of range: the surface needs the weights along the way "
                          f"(>= 1)")
    configs = train_configs(cfg)
    from experiments.data import check_available

    check_available(cfg.dataset.name)  # DatasetUnavailable: not downloaded
    return configs


def config_digest(cfg: DictConfig) -> str:
    """The ``config_hash`` tag of a surface run: the digest of everything that determines
    its grids (``experiments.resume.config_hash``; not tracking, not ``output_dir``)."""
    from experiments.resume import config_hash

    config = OmegaConf.to_container(cfg, resolve=True)
    return config_hash({k: v for k, v in config.items() if k != "output_dir"})


# --------------------------------------------------------------------------- the math
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


# --------------------------------------------------------------------------- pictures
def draw(folder: Path, title: str, grids: dict, labels: list[str], frames: int,
         loss: str = "cross_entropy") -> list[Path]:
    """``lines.png``, ``contour.png``, ``paths.png`` and ``paths.gif`` of ``compute``'s
    grids in ``folder``; the contours' colour bars are in log10 of the ``loss``."""
    from experiments import landscape_plots as lp
    from experiments import registry
    from experiments.landscapes import Trajectory
    from experiments.plotting import option_style, pyplot

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


# --------------------------------------------------------------------------- runs
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
    from experiments import tracking
    from experiments.landscapes.pipeline import output_dir
    from experiments.progress import Progress

    start = time.perf_counter()
    train = train if train is not None else validate(cfg)
    tr = cfg.tracking
    uri = tracking.resolve_tracking_uri(tr.uri) if tr.enabled else None
    if uri:
        tracking.probe_store(uri)
    run_ids = list(cfg.runs)
    if run_ids:  # a missing run is refused before the surface's own run exists
        base, paths = _read_runs(uri, run_ids)
    parent = None
    if uri:
        parent = tracking.RunLogger.start(
            uri, tr.experiment_name, tr.run_name or f"surface-{cfg.dataset.name}-"
            f"{cfg.model.name}", tags={"kind": "surface", "config_hash": config_digest(cfg),
                                       **{str(k): str(v) for k, v in tr.tags.items()}})
    with ended_run(parent):
        if not run_ids:
            from experiments.pipeline import run as train_run

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
        folder = output_dir(cfg)
        folder.mkdir(parents=True, exist_ok=True)
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
              f"'{tr.experiment_name}').\nSee it with: {tracking.ui_command(uri)}", file=out)
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
