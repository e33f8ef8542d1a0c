"""Build an optimizer from its config: the lecture's own, or the Keras built-in translated.

A config holds the lecture's hyperparameters once (η, α, ρ, δ, ...). ``implementation:
custom`` builds the matching ``custom_optimizers`` class with them; ``implementation:
keras`` translates them into Keras's conventions, so a pair's curves should agree and any
gap is a finding, not a units mistake. Each rule describes its own translation (and
where it is not exact) in ``custom_optimizers/rules/<name>.py`` (``Rule.keras``; see
``docs/formulas.md``); for example Momentum(η, α) == keras SGD(learning_rate=η(1-α),
momentum=α) exactly, and Adam(η, ρ1, ρ2, δ) ~ keras Adam(η, ρ1, ρ2, epsilon=δ). The
lecture's norm clipping maps to Keras's per-tensor ``clipnorm``; sign clipping, and
settings a rule's twin lacks (Adam without bias correction), are refused for
``implementation: keras``.
"""

from __future__ import annotations

from typing import Any, Mapping

from custom_optimizers import capabilities
from experiments.core import registry

# Keyword arguments of keras.optimizers.Optimizer that both implementations pass through.
BASE_KWARGS = ("weight_decay", "global_clipnorm", "use_ema", "gradient_accumulation_steps")


def lecture_class(name):
    """The ``custom_optimizers`` class of rule ``name`` (``"adam"`` -> ``Adam``)."""
    return registry.rule(name).load_class()


def keras_arguments(name: str, hp: Mapping[str, Any]) -> tuple[str, dict]:
    """The Keras built-in (class name, keyword arguments) that matches lecture ``hp``."""
    return registry.rule(name).keras_arguments(hp)


def keras_refusal(name: str, hp: Mapping[str, Any]) -> str | None:
    """Why ``hp`` cannot be expressed with the Keras built-in, or None if it can."""
    return registry.rule(name).keras_refusal(hp)


def build_optimizer(cfg: Mapping[str, Any], schedule: Mapping[str, Any] | None = None):
    """The optimizer an ``optimizer`` config describes (see the module docstring), its
    learning rate under ``schedule`` (a ``conf/schedule`` config; None: constant). The
    Keras twin gets the schedule of its translated rate (``experiments.core.schedules``)."""
    import keras

    from experiments.core.schedules import build_schedule

    hp = {k: v for k, v in dict(cfg).items() if k not in ("name", "implementation")}
    base = {k: hp.pop(k) for k in BASE_KWARGS if k in hp}
    base = {k: v for k, v in base.items() if v not in (None, False)}
    name = cfg["name"]
    if cfg["implementation"] == "custom":
        hp["learning_rate"] = build_schedule(schedule, hp["learning_rate"])
        return lecture_class(name)(**hp, **base)
    refusal = keras_refusal(name, hp)
    if refusal:
        raise ValueError(refusal)
    class_name, kwargs = keras_arguments(name, hp)
    kwargs["learning_rate"] = build_schedule(schedule, kwargs["learning_rate"])
    return getattr(keras.optimizers, class_name)(**kwargs, **base)


def effective_learning_rates(optimizer):
    """Per-weight effective learning rate tensors, one per variable, or None.

    The lecture's ``lr / (δ + sqrt(r))``: for the custom optimizers their own
    ``effective_learning_rates()``; for Keras's built-ins the same quantity in their
    conventions, as the rule whose twin the built-in is describes it. Rules that are not
    adaptive (SGD, momentum, ...) have no per-weight rate: None. Asked through
    ``custom_optimizers.capabilities``, as everything below.
    """
    return capabilities.of(optimizer).effective_learning_rates()


def unwrapped(optimizer):
    """The optimizer inside a mixed-precision ``LossScaleOptimizer``, else itself."""
    return capabilities.unwrap(optimizer)


def evaluation_point_name(optimizer) -> str:
    """Where a model trained by ``optimizer`` is evaluated, tested and saved: ``"x"``, the
    optimizer's evaluation point (Schedule-Free's average), or ``"weights"``, the weights
    it trains (Schedule-Free's y, for Keras's twin)."""
    return capabilities.of(optimizer).evaluation_point_name


def update_paths(optimizer) -> dict[str, list[str]] | None:
    """``{"muon": [paths], "adamw": [paths]}`` for a built Muon (ours or Keras's: which
    variables took the orthogonalised step, which AdamW's), None for any other rule."""
    return capabilities.of(optimizer).parameter_groups()
