"""The training job's config: its schema (``conf/train.yaml``), the Optuna presets, and
``validate``, which refuses a composed config that would fail later, before TensorFlow.

The shared pieces (optimizer options, tracking, the unknown-key check) are
``experiments.core.config``'s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments.core import config, registry, schedules
from experiments.core.checks import ConfigError, check_numbers, check_range
from experiments.core.config import (CURVATURE_OPERATORS, MAX_SEED, TrackingSchema,
                                     check_schema_keys, validate_optimizer)

STRATEGIES = ("default", "mirrored", "multi_worker")
LOSSES = ("cross_entropy", "mse")


# --------------------------------------------------------------------------- trainer
@dataclass
class TrainerSchema:
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0  # weights initialisation and batch order
    steps_per_execution: int = 8  # optimizer steps per compiled call (fewer Python round trips)
    max_steps: Optional[int] = None  # stop after this many optimizer steps (quick checks)
    jit_compile: bool = False  # XLA-compile the train step
    deterministic: bool = True  # TensorFlow's op determinism (same seed, same numbers)
    # Checkpoint at the first epoch end this many seconds after the last one (0: every
    # epoch; null: only when interrupted). Saving costs ~50 ms for a small model.
    checkpoint_every_s: Optional[float] = 60.0
    resume: Optional[str] = None  # true: newest interrupted run of this config; or a run id
    strategy: str = "default"  # default, mirrored (local devices), multi_worker (TF_CONFIG)
    logical_cpus: Optional[int] = None  # split the CPU into n logical devices (to try mirrored)
    progress: bool = True  # epoch k/N, losses, ETA on stderr (also off: OPTLAB_PROGRESS=0)
    # The loss trained and measured: cross_entropy, or mse = mean of ½‖logits − one_hot(y)‖².
    loss: str = "cross_entropy"
    full_batch: bool = False  # every step on the whole training split (gradient descent)
    # Curvature (experiments.curvature): λ_max, λ_min, preconditioned λ_max at step 0, every
    # n steps and after the last; 0 = off. On curvature_samples examples (0: all of the
    # training split up to 10000, a seeded sample of 10000 beyond; more than the split:
    # all of it), curvature_iterations Lanczos steps (Hessian-vector products) each.
    curvature_every_n_steps: int = 0
    curvature_samples: int = 0
    curvature_iterations: int = 20
    # With curvature_spectrum, each measurement adds curvature/trace (Hutch++ with 3 ×
    # curvature_probes products), curvature/lambda_max/<layer> (each layer's diagonal
    # block) and the spectral density (stochastic Lanczos quadrature from curvature_probes
    # probes of curvature_iterations steps), logged as curvature/spectrum/step_<N>.npz/.png.
    curvature_spectrum: bool = False
    curvature_probes: int = 10
    # hessian, or ggn: the generalized Gauss–Newton matrix JᵀH_ℓJ (positive semi-definite;
    # the Fisher under softmax cross-entropy) in place of the Hessian, for every measurement.
    curvature_operator: str = "hessian"
    # Keep the flat weights at step 0, every n steps and after the last, logged as the
    # artifact weights/trajectory.npz (python -m experiments.surface reads it); 0 = off.
    weights_every_n_steps: int = 0


# --------------------------------------------------------------------------- top level
@dataclass
class TrainSchema:
    optimizer: Any = MISSING
    schedule: Any = MISSING  # of the optimizer's learning rate (experiments/core/schedules.py)
    dataset: Any = MISSING
    model: Any = MISSING
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    tracking: TrackingSchema = field(default_factory=TrackingSchema)


def _with_name(cls, name, schema_name):
    """``cls``'s fields plus ``name`` first: the schema of one dataset or model option."""
    extra = [(f.name, f.type, f) for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(schema_name, [("name", str, field(default=name))] + extra)


def search_space_override(dim) -> str:
    """A rule's ``SearchDim`` in the Optuna sweeper's grammar.

    The sweeper has no ``1 - value`` log scale: a ``log1m`` dimension (a decay close to 1)
    is searched uniformly over the same values.
    """
    low, high = (float(v) for v in dim.value_range())
    interval = f"interval({low!r}, {high!r})"
    return f"tag(log, {interval})" if dim.scale == "log" else interval


def search_preset(rule) -> dict:
    """The ``hparams_search=<rule>_optuna`` preset: Hydra's Optuna sweeper (TPE, seeded) over
    the rule's search space (``conf/optimizer/lab/<rule>.yaml``), on ``optimizer=<rule>``; override
    ``optimizer=keras_<rule>`` to search its Keras twin with the same space."""
    name = f"{rule.name}_optuna"
    return {
        "defaults": [{"override /optimizer": rule.name},
                     {"override /hydra/sweeper": "optuna"},
                     {"override /hydra/sweeper/sampler": "tpe"}],
        "tracking": {"tags": {"search": name}},
        "hydra": {"sweeper": {
            "direction": "minimize",
            "study_name": rule.name,
            "storage": None,  # in memory: the trials themselves are kept in MLflow
            "n_trials": 20,
            "n_jobs": 1,  # trials asked per batch; > 1 pays off with hydra/launcher=joblib
            "sampler": {"seed": 0, "n_startup_trials": 5},
            "params": {f"optimizer.{key}": search_space_override(dim)
                       for key, dim in registry.lab(rule.name).search_space.items()},
        }},
    }


def register_schemas() -> None:
    """Put every schema in Hydra's ConfigStore under ``schema/<group>/<option>``, and the
    Optuna presets under ``hparams_search/<rule>_optuna``."""
    from experiments import data, models

    config.register_schemas()
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainSchema)
    for rule in registry.rules():
        cs.store(group="hparams_search", name=f"{rule.name}_optuna", node=search_preset(rule),
                 package="_global_")
    for name in data.DATASETS:
        cs.store(group="schema/dataset", name=name,
                 node=_with_name(data.DatasetParams, name, f"{name}_dataset"))
    for name, params in models.MODEL_PARAMS.items():
        cs.store(group="schema/model", name=name,
                 node=_with_name(params, name, f"{name}_model"))


# --------------------------------------------------------------------------- checks
def tf_config() -> dict | None:
    """The parsed ``TF_CONFIG`` environment variable, or None when unset."""
    import json
    import os

    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
        parsed["cluster"], parsed["task"]["type"], parsed["task"]["index"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError("TF_CONFIG is not valid: it must be JSON with 'cluster' and "
                          "'task': {'type': ..., 'index': ...}") from None
    return parsed


def _check_strategy(trainer) -> None:
    if trainer.strategy not in STRATEGIES:
        raise ConfigError(f"trainer.strategy={trainer.strategy!r} is not valid: choose one of "
                          f"{', '.join(STRATEGIES)}")
    check_range("trainer.logical_cpus", trainer.logical_cpus, low=1)
    if trainer.strategy != "default" and trainer.jit_compile:
        raise ConfigError(f"trainer.jit_compile=true is not supported with "
                          f"trainer.strategy={trainer.strategy}: use one or the other")
    if trainer.strategy == "multi_worker":
        if tf_config() is None:
            raise ConfigError("trainer.strategy=multi_worker needs the TF_CONFIG environment "
                              "variable describing the cluster and this worker's task")
        if trainer.resume:
            raise ConfigError("trainer.resume is not supported with "
                              "trainer.strategy=multi_worker")


def _check_curvature(trainer) -> None:
    """``trainer.loss``, ``full_batch`` and the curvature / weight-snapshot keys."""
    if trainer.loss not in LOSSES:
        raise ConfigError(f"trainer.loss={trainer.loss!r} is not valid: choose one of "
                          f"{', '.join(LOSSES)}")
    for key in ("curvature_every_n_steps", "curvature_samples", "weights_every_n_steps"):
        check_range(f"trainer.{key}", trainer[key], low=0)
    check_range("trainer.curvature_iterations", trainer.curvature_iterations, low=2)
    check_range("trainer.curvature_probes", trainer.curvature_probes, low=1)
    if trainer.curvature_operator not in CURVATURE_OPERATORS:
        raise ConfigError(f"trainer.curvature_operator={trainer.curvature_operator!r} is not "
                          f"valid: choose one of {', '.join(CURVATURE_OPERATORS)}")
    if trainer.curvature_spectrum and not trainer.curvature_every_n_steps:
        raise ConfigError("trainer.curvature_spectrum=true needs trainer.curvature_every_n_steps"
                          " > 0 (the spectrum is measured with the other curvature metrics)")
    if trainer.strategy != "default" and (trainer.curvature_every_n_steps
                                          or trainer.weights_every_n_steps):
        raise ConfigError(f"trainer.curvature_every_n_steps and weights_every_n_steps need "
                          f"trainer.strategy=default, not {trainer.strategy}")


def validate(cfg: DictConfig) -> None:
    """Refuse a composed config that would fail later, with one line naming the value."""
    check_schema_keys(cfg)
    validate_optimizer(cfg.optimizer)
    schedules.validate_schedule(cfg.get("schedule") or {"name": "constant"})
    trainer = cfg.trainer
    for key in ("epochs", "batch_size", "steps_per_execution"):
        check_range(f"trainer.{key}", trainer[key], low=1)
    check_range("trainer.seed", trainer.seed, low=0, high=MAX_SEED)
    check_range("trainer.max_steps", trainer.max_steps, low=1)
    check_range("trainer.checkpoint_every_s", trainer.checkpoint_every_s, low=0)
    _check_strategy(trainer)
    _check_curvature(trainer)
    check_range("tracking.log_every_n_steps", cfg.tracking.log_every_n_steps, low=1)
    from experiments.core.tracking import check_experiment_name

    check_experiment_name(cfg.tracking.experiment_name)
    from experiments import data, models

    for label, check in (("dataset", data.check_params), ("model", models.check_params)):
        params = OmegaConf.to_container(cfg[label], resolve=True)
        try:
            check(params.pop("name"), **params)
        except ValueError as err:
            raise ConfigError(f"{label}: {err}") from None
    # the job's own keys: Hydra's node (present where a config was composed with it)
    # holds values that resolve only inside a running job (hydra.job.num)
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    check_numbers(OmegaConf.to_container(job, resolve=True))
