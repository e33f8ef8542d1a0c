"""The landscape app's schemas, the optimizer options it composes, and its checks, all
before TensorFlow is imported."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments.core import CONF, registry
from experiments.core.checks import ConfigError, check_range
from experiments.core.config import MAX_SEED, OPTIMIZERS, TrackingSchema, validate_optimizer
from experiments.landscape.functions import LANDSCAPES


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
    # Per rule (sgd, adam, ...); a rule not listed uses its lab landscape_learning_rate.
    learning_rates: Dict[str, float] = field(default_factory=dict)
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


def _optimizer_overrides():
    """Every hyperparameter of any rule, optional: set on every selected optimizer that has
    the key (null: each keeps its own)."""
    names = ["learning_rate", "clip_threshold", "clip_mode"]
    types = {"clip_mode": str}
    for rule in registry.rules():
        for hp in rule.hyperparameters:
            if hp.name not in names:
                names.append(hp.name)
                types[hp.name] = type(hp.default)
    return dataclasses.make_dataclass(
        "OptimizerOverrides",
        [(n, Optional[types.get(n, float)], field(default=None)) for n in names])


OptimizerOverrides = _optimizer_overrides()


@dataclass
class LandscapeAppSchema:
    landscape: Any = MISSING
    # Options of conf/optimizer; null: every one (each rule and its Keras twin).
    optimizers: Optional[List[str]] = None
    schedule: Any = MISSING  # of every optimizer's learning rate (conf/schedule)
    steps: Optional[int] = None  # default: the landscape's own
    optimizer_overrides: OptimizerOverrides = field(default_factory=OptimizerOverrides)
    grid_points: int = 201  # grid search: points per axis (grid_points² evaluations)
    greedy_evaluations: Optional[int] = None  # default: steps + 1, an optimizer's budget
    seed: int = 0  # the greedy search's random moves
    gif_frames: int = 40
    output_dir: Optional[str] = None  # pictures and summary; default: Hydra's output folder
    tracking: TrackingSchema = field(default_factory=TrackingSchema)


def register_schemas() -> None:
    """Put the landscape schemas in Hydra's ConfigStore like ``experiments.train.config`` does."""
    from experiments.core import config

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


def compose_option(option: str) -> DictConfig:
    """The ``optimizer`` option ``option`` as Hydra composes it (schema, defaults, YAML)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"+optimizer={option}"]
    if GlobalHydra.instance().is_initialized():  # inside the app or a test's compose context
        return compose(config_name=None, overrides=overrides).optimizer
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=None, overrides=overrides).optimizer


def selected_options(cfg: DictConfig) -> list[str]:
    """``cfg.optimizers``, or every ``conf/optimizer`` option when it is null."""
    if cfg.optimizers is None:
        return list(registry.optimizer_names())
    return list(cfg.optimizers)


def optimizer_configs(cfg: DictConfig) -> dict[str, dict]:
    """``{option: optimizer config}`` for ``cfg.optimizers``, with the learning rate for the
    landscape (``landscape.learning_rates`` of its rule, else the rule's
    ``landscape_learning_rate``) and ``optimizer_overrides`` (keys an optimizer lacks skip
    it) applied, each checked like ``experiments.train`` checks its optimizer."""
    options = optimizer_options()
    selected = selected_options(cfg)
    overrides = {k: v for k, v in OmegaConf.to_container(cfg.optimizer_overrides,
                                                          resolve=True).items()
                 if v is not None}
    rates = cfg.landscape.learning_rates
    out, used = {}, set()
    for option in selected:
        if option not in options:
            raise ConfigError(f"optimizers: {option!r} is not an optimizer option: choose "
                              f"from {', '.join(options)}")
        opt = compose_option(option)
        opt.learning_rate = rates.get(opt.name, registry.lab(opt.name).landscape_learning_rate)
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
                          f"optimizer ({', '.join(selected)})")
    return out


# --------------------------------------------------------------------------- checks
def validate(cfg: DictConfig) -> dict[str, dict]:
    """Refuse a composed landscape config with one line; return the optimizer configs."""
    from experiments.core.config import check_schema_keys
    from experiments.core.schedules import validate_schedule

    check_schema_keys(cfg)
    validate_schedule(cfg.schedule)
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
        check_range(f"landscape.{key}", ls[key], low=0, low_open=True)
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
        check_range("landscape.condition", ls.condition, low=1)
    if ls.name == "local_minima":
        check_range("landscape.ripple", ls.ripple, low=0)
    if ls.name == "cliff":
        check_range("landscape.height", ls.height, low=0, low_open=True)
        # the face must end before the minimum at x = 1
        check_range("landscape.width", ls.width, low=0, high=1, low_open=True)
    check_range("landscape.steps", ls.steps, low=1)
    check_range("steps", cfg.steps, low=1)
    check_range("grid_points", cfg.grid_points, low=2)
    check_range("greedy_evaluations", cfg.greedy_evaluations, low=1)
    check_range("gif_frames", cfg.gif_frames, low=2)
    check_range("seed", cfg.seed, low=0, high=MAX_SEED)
    check_range("tracking.log_every_n_steps", cfg.tracking.log_every_n_steps, low=1)
    if cfg.optimizers is not None and not cfg.optimizers:
        raise ConfigError("optimizers is empty: list at least one optimizer option, or null "
                          "for all")
    selected = selected_options(cfg)
    if len(set(selected)) != len(selected):
        raise ConfigError(f"optimizers={selected} names an option twice")
    return optimizer_configs(cfg)
