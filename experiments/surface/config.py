"""The surface command's config (``conf/surface.yaml``): its schema, the training configs
it composes for each optimizer, ``validate`` and the digest that names a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments.core.checks import ConfigError, check_range
from experiments.core.config import MAX_SEED, TrackingSchema
from experiments.train.config import TrainerSchema
from experiments.train.config import validate as validate_train


@dataclass
class SurfaceSchema:
    dataset: Any = MISSING
    model: Any = MISSING
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    tracking: TrackingSchema = field(default_factory=TrackingSchema)
    optimizers: List[str] = field(default_factory=lambda: ["sgd", "momentum", "adam"])
    runs: List[str] = field(default_factory=list)  # run ids to read instead of training
    learning_rates: Dict[str, float] = field(default_factory=dict)  # option -> η
    samples: int = 0  # training examples the loss is evaluated on (0: the split, at most 10000)
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
    from experiments.train.config import register_schemas as register_train

    register_train()
    ConfigStore.instance().store(name="surface_schema", node=SurfaceSchema)


def _compose_optimizer(option: str) -> DictConfig:
    from experiments.landscape.config import compose_option, optimizer_options

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
    its grids (``experiments.core.resume.config_hash``; not tracking, not ``output_dir``)."""
    from experiments.core.resume import config_hash

    config = OmegaConf.to_container(cfg, resolve=True)
    return config_hash({k: v for k, v in config.items() if k != "output_dir"})
