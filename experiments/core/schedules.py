"""Learning-rate schedules (``conf/schedule/``), the same for a lecture rule and its Keras twin.

A schedule multiplies the optimizer's own learning rate η by a factor f(t) of the step t
(``optimizer.iterations``: 0 for the first update):

============  ===========================================================  ====================
``constant``  f = 1                                                        (the default)
``step``      f = ``factors[i]`` from step ``boundaries[i-1]`` on           PiecewiseConstantDecay
``exponential`` f = ``decay_rate ** (t / decay_steps)`` (``staircase``: floored)  ExponentialDecay
``cosine``    linear from 0 to 1 over ``warmup_steps``, then a cosine from 1  CosineDecay
              to ``alpha`` over ``decay_steps`` (then ``alpha``)
``warmup``    linear from 0 to 1 over ``warmup_steps``, then 1             CosineDecay, alpha=1
============  ===========================================================  ====================

All are ``keras.optimizers.schedules`` classes, so a saved model (and a checkpoint) keeps
its schedule and a resumed run continues it exactly. Because every schedule is η times a
factor, the Keras twin gets the same schedule of its translated rate: momentum's
``keras SGD(η(1-α), α)`` runs ``η(1-α)·f(t)``, exactly the lecture rule's ``η·f(t)``
translated at every step. This module imports no TensorFlow until ``build_schedule``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Mapping

from hydra.core.config_store import ConfigStore

from experiments.core.checks import ConfigError, check_range


@dataclass
class ConstantSchedule:
    name: str = "constant"


@dataclass
class StepSchedule:
    name: str = "step"
    boundaries: List[int] = field(default_factory=lambda: [500, 1000])  # steps, increasing
    factors: List[float] = field(default_factory=lambda: [1.0, 0.1, 0.01])  # one more


@dataclass
class ExponentialSchedule:
    name: str = "exponential"
    decay_steps: int = 1000  # η is multiplied by decay_rate every decay_steps steps
    decay_rate: float = 0.5
    staircase: bool = False  # true: in whole steps of decay_steps


@dataclass
class CosineSchedule:
    name: str = "cosine"
    warmup_steps: int = 0  # linear from 0 to η first
    decay_steps: int = 1000  # then a half cosine down to alpha * η over these steps
    alpha: float = 0.0


@dataclass
class WarmupSchedule:
    name: str = "warmup"
    warmup_steps: int = 100  # linear from 0 to η, then η


SCHEDULE_SCHEMAS = {"constant": ConstantSchedule, "step": StepSchedule,
                    "exponential": ExponentialSchedule, "cosine": CosineSchedule,
                    "warmup": WarmupSchedule}
CONSTANT = {"name": "constant"}


def register_schemas() -> None:
    cs = ConfigStore.instance()
    for name, schema in SCHEDULE_SCHEMAS.items():
        cs.store(group="schema/schedule", name=name, node=schema)


def validate_schedule(s: Mapping[str, Any], label: str = "schedule") -> None:
    """Refuse a schedule config that would fail later, with one line naming the value."""
    name = s.get("name")
    if name not in SCHEDULE_SCHEMAS:
        raise ConfigError(f"{label}.name={name!r} is not valid: choose one of "
                          f"{', '.join(SCHEDULE_SCHEMAS)}")

    def in_range(key, **bounds):
        check_range(f"{label}.{key}", s[key], **bounds)

    if name == "step":
        bounds, factors = list(s["boundaries"]), list(s["factors"])
        if len(factors) != len(bounds) + 1:
            raise ConfigError(f"{label}.factors={factors} must have one value more than "
                              f"{label}.boundaries={bounds} (the factor before the first boundary)")
        if any(b < 1 for b in bounds) or any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise ConfigError(f"{label}.boundaries={bounds} must be increasing steps >= 1")
        if any(not f >= 0 for f in factors):
            raise ConfigError(f"{label}.factors={factors} must be >= 0")
    if name in ("exponential", "cosine"):
        in_range("decay_steps", low=1)
    if name == "exponential":
        in_range("decay_rate", low=0, low_open=True, high=1)
    if name == "cosine":
        in_range("warmup_steps", low=0)
        in_range("alpha", low=0, high=1)
    if name == "warmup":
        in_range("warmup_steps", low=1)


def build_schedule(s: Mapping[str, Any] | None, learning_rate: float):
    """``learning_rate`` (η) under schedule ``s``: a float for ``constant`` (or None), else
    a ``keras.optimizers.schedules.LearningRateSchedule`` whose every value is η·f(t)."""
    lr = float(learning_rate)
    name = (s or CONSTANT)["name"]
    if name == "constant":
        return lr
    from keras.optimizers import schedules

    if name == "step":
        return schedules.PiecewiseConstantDecay(
            [int(b) for b in s["boundaries"]], [lr * float(f) for f in s["factors"]])
    if name == "exponential":
        return schedules.ExponentialDecay(lr, int(s["decay_steps"]), float(s["decay_rate"]),
                                          staircase=bool(s["staircase"]))
    warmup = int(s["warmup_steps"])
    if name == "cosine":
        return schedules.CosineDecay(0.0 if warmup else lr, int(s["decay_steps"]),
                                     alpha=float(s["alpha"]),
                                     warmup_target=lr if warmup else None, warmup_steps=warmup)
    if name == "warmup":  # a cosine that decays to alpha = 1 of its peak is constant
        return schedules.CosineDecay(0.0, 1, alpha=1.0, warmup_target=lr, warmup_steps=warmup)
    raise ValueError(f"unknown schedule {name!r}")
