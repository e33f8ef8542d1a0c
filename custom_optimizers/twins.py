"""Keras's built-in twins of the rules, described for ``custom_optimizers.capabilities``.

The one place outside our optimizer classes that reads Keras's private attributes (its
slot lists, Muon's split, the current learning rate): written against the Keras version
this library is tested with, so a change there breaks here, in one file, under the twin
tests.

Each built-in states what ``capabilities.of`` answers for it: its numeric hyperparameters
(the attribute names), which of them its step reads only as tensors (``tunable``; the
others — Keras's SGD reads ``momentum`` in Python to decide whether it has a momentum
slot — need a new trace when they change), which slots start as copies of the weights,
and, as the rule whose twin it is describes them, its effective learning rates.
"""

from __future__ import annotations

import dataclasses

from custom_optimizers import rules
from custom_optimizers._interface import Capabilities

__all__ = ["Twin", "TWINS", "capabilities"]


@dataclasses.dataclass(frozen=True)
class Twin:
    """One Keras built-in: ``hyperparameters`` (attribute names, numbers), ``tunable``
    (those its step reads as tensors only) and ``weight_slots`` (its attributes that hold
    slot lists starting as copies of the weights)."""

    hyperparameters: tuple[str, ...]
    tunable: tuple[str, ...] = ()
    weight_slots: tuple[str, ...] = ()


_ADAM = ("beta_1", "beta_2", "epsilon")

#: Keras class name -> its description. Every rule's Keras twin is here (a test checks it).
TWINS = {
    "SGD": Twin(("momentum",)),  # `if self.momentum != 0` builds, and steps, differently
    "Adagrad": Twin(("initial_accumulator_value", "epsilon"), tunable=("epsilon",)),
    "RMSprop": Twin(("rho", "momentum", "epsilon"), tunable=("rho", "epsilon")),
    "Adam": Twin(_ADAM, tunable=_ADAM),
    "Nadam": Twin(_ADAM, tunable=_ADAM),
    "AdamW": Twin((*_ADAM, "weight_decay"), tunable=(*_ADAM, "weight_decay")),
    "Lion": Twin(("beta_1", "beta_2"), tunable=("beta_1", "beta_2")),
    "ScheduleFreeAdamW": Twin((*_ADAM, "weight_decay", "warmup_steps"),
                              tunable=(*_ADAM, "weight_decay"), weight_slots=("_momentums",)),
    "Muon": Twin(("momentum", "adam_beta_1", "adam_beta_2", "epsilon", "weight_decay",
                  "adam_weight_decay", "rms_rate"),
                 tunable=("momentum", "adam_beta_1", "adam_beta_2", "weight_decay",
                          "adam_weight_decay")),
}


class TwinCapabilities(Capabilities):
    """A Keras built-in twin of one of the rules."""

    def __init__(self, optimizer, twin: Twin, rule):
        super().__init__(optimizer)
        self.twin, self.rule = twin, rule

    def hyperparameter_names(self):
        return self.twin.hyperparameters

    @property
    def tunable(self):
        return frozenset(self.twin.tunable)

    def weight_slots(self):
        return [getattr(self.optimizer, name) for name in self.twin.weight_slots]

    def effective_learning_rates(self):
        rates = self.rule.keras.effective_learning_rates
        return rates(self.optimizer) if rates is not None else None

    def parameter_groups(self):
        if type(self.optimizer).__name__ != "Muon":
            return None
        groups = {"muon": [], "adamw": []}
        for variable in self.optimizer._trainable_variables:
            uses_adamw = self.optimizer._should_use_adamw(variable)
            groups["adamw" if uses_adamw else "muon"].append(variable.path)
        return groups


def capabilities(optimizer) -> Capabilities | None:
    """``optimizer``'s capabilities if it is a Keras built-in twin of a rule, else None."""
    import keras

    name = type(optimizer).__name__
    builtin = getattr(keras.optimizers, name, None)
    if name not in TWINS or type(optimizer) is not builtin:
        return None
    twins = [r for r in rules.all_rules() if r.keras is not None and r.keras.class_name == name]
    if not twins:
        return None
    # several rules may share a built-in (SGD: sgd, momentum, nesterov): an adaptive one first
    rule = next((r for r in twins if r.keras.effective_learning_rates is not None), twins[0])
    return TwinCapabilities(optimizer, TWINS[name], rule)
