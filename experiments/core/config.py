"""The schemas every command's config shares, and the checks that go with them.

Every YAML option in a group extends the schema of that option (``defaults:
[/schema/<group>/<option>@_here_, _self_]``), so a wrong type or an unknown key is refused
by Hydra while composing, and the commands' ``validate`` refuse out-of-range values — all
before TensorFlow is imported. Here: the optimizer options (their schemas and ranges come
from the rule registry, ``custom_optimizers.rules``, loaded by ``experiments.core.registry``,
the same descriptions the optimizers check their arguments with), the tracking node, and
the check that no ``+key`` slipped past a schema. Each command's own schema lives in its
package (``experiments.train.config``, ``experiments.landscape.config``, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments.core import registry, schedules
from experiments.core.checks import MAX_SEED, ConfigError, check_range

IMPLEMENTATIONS = ("custom", "keras")
CURVATURE_OPERATORS = ("hessian", "ggn")  # experiments.curvature.operators
OPTIMIZERS = registry.rule_names()


# --------------------------------------------------------------------------- optimizer
@dataclass
class OptimizerSchema:
    """Shared by all optimizers: the lecture's learning rate and clipping, Keras base options."""

    name: str = MISSING
    implementation: str = "custom"  # custom (custom_optimizers) or keras (built-in)
    learning_rate: float = 0.01  # η (ε on the AdaGrad/RMSProp/Adam slides)
    clip_threshold: Optional[float] = None  # u: clip each gradient tensor with norm > u
    clip_mode: str = "norm"  # norm: g*u/||g||; sign: the slide's sign(g)*u
    weight_decay: Optional[float] = None  # Keras base-class options, passed through
    global_clipnorm: Optional[float] = None
    use_ema: bool = False
    gradient_accumulation_steps: Optional[int] = None


def optimizer_schema(rule):
    """``OptimizerSchema`` plus the rule's name, default η and own hyperparameters."""
    fields = [("name", str, field(default=rule.name)),
              ("learning_rate", float, field(default=rule.learning_rate))]
    fields += [(hp.name, type(hp.default), field(default=hp.default))
               for hp in rule.hyperparameters]
    return dataclasses.make_dataclass(f"{rule.name}_optimizer", fields, bases=(OptimizerSchema,))


OPTIMIZER_SCHEMAS = {rule.name: optimizer_schema(rule) for rule in registry.rules()}


# --------------------------------------------------------------------------- tracking
@dataclass
class TrackingSchema:
    enabled: bool = True
    uri: Optional[str] = None  # default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db
    experiment_name: str = "optimizer-lab"
    run_name: Optional[str] = None  # default: <optimizer>-<dataset>-<model>-s<seed>
    log_every_n_steps: int = 1  # per-step metrics on every n-th optimizer step
    log_model: bool = True  # the trained model as an artifact (model/model.keras)
    log_plots: bool = True  # loss-curve PNG
    tags: Dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- checks
def unknown_key_message(key: str, schema) -> str:
    """``key`` is not a field of the dataclass ``schema``: one line with the valid keys."""
    import difflib

    valid = [f.name for f in dataclasses.fields(schema)]
    parent, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""
    where = f"{parent} ({schema.__name__})" if parent else schema.__name__
    return f"{key} is not a key of {where}{hint}: valid keys are {', '.join(valid)}"


def check_schema_keys(cfg: DictConfig, prefix: str = "") -> None:
    """Refuse keys that no schema declares, e.g. ``+trainer.epoch=50`` or ``+optimizer.lr=1``.

    Hydra refuses ``key=value`` for an unknown key but lets ``+key``/``++key`` add one to
    a typed node. Every node typed by a dataclass is checked against its fields; nodes of
    free mappings (``tracking.tags``, ``learning_rates``) may hold any key.
    """
    schema = OmegaConf.get_type(cfg)
    if dataclasses.is_dataclass(schema):
        valid = {f.name for f in dataclasses.fields(schema)}
        for key in cfg.keys():
            if key not in valid and not (key == "hydra" and not prefix):  # Hydra checks it
                raise ConfigError(unknown_key_message(f"{prefix}{key}", schema))
    for key in cfg.keys():
        if key == "hydra" and not prefix:
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            check_schema_keys(node, f"{prefix}{key}.")


def validate_optimizer(opt: DictConfig) -> None:
    """Refuse an ``optimizer`` config that would fail later, with one line naming the value."""
    if opt.name not in registry.rule_names():
        raise ConfigError(f"optimizer.name={opt.name!r} is not valid: choose one of "
                          f"{', '.join(registry.rule_names())}")
    rule = registry.rule(opt.name)
    if opt.implementation not in IMPLEMENTATIONS:
        raise ConfigError(f"optimizer.implementation={opt.implementation!r} is not valid: "
                          f"choose one of {', '.join(IMPLEMENTATIONS)}")
    own = {"learning_rate", "clip_threshold", "clip_mode"}
    own |= {hp.name for hp in rule.hyperparameters}
    for key, value in opt.items():
        if key in own:
            try:
                rule.check(key, value, label=f"optimizer.{key}")
            except ValueError as err:
                raise ConfigError(str(err)) from None
    for key in ("weight_decay", "global_clipnorm"):
        check_range(f"optimizer.{key}", opt.get(key), low=0)
    if opt.get("weight_decay") and rule.base_weight_decay_refusal:
        raise ConfigError(f"optimizer.weight_decay={opt.weight_decay!r} is not valid for "
                          f"optimizer={rule.name}: {rule.base_weight_decay_refusal}")
    check_range("optimizer.gradient_accumulation_steps", opt.get("gradient_accumulation_steps"),
                low=2)
    if opt.implementation == "keras":
        refusal = rule.keras_refusal(opt)
        if refusal:
            raise ConfigError(refusal)


def register_schemas() -> None:
    """Put the optimizer and schedule schemas in Hydra's ConfigStore
    (``schema/optimizer/<rule>``, ``schema/schedule/<name>``): what every command composes."""
    schedules.register_schemas()
    cs = ConfigStore.instance()
    for rule in registry.rules():  # a rule registered since import too
        cs.store(group="schema/optimizer", name=rule.name,
                 node=OPTIMIZER_SCHEMAS.get(rule.name) or optimizer_schema(rule))
