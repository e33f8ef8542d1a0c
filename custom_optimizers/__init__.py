"""The lecture's optimizers as Keras 3 optimizers (``keras.optimizers.Optimizer``).

>>> from custom_optimizers import SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam

Each class docstring is its formula card: the exact rule, the initial state, where
epsilon sits and how it differs from the Keras built-in. ``custom_optimizers.rules``
declares every rule once (NumPy reference, hyperparameters with their defaults, ranges
and meanings, Keras twin, ...), free of TensorFlow; each class names its rule
(``class Lion(LectureOptimizer, rule=RULE)``), which makes its signature, checks,
``get_config`` and Args table. ``custom_optimizers.reference`` gathers the independent
NumPy implementations, ``custom_optimizers.capabilities`` what an optimizer offers beyond
Keras's interface (an evaluation point, parameter groups, its tunable hyperparameters,
how its state resets), for ours and for Keras's built-in twins alike.

Importing the package imports nothing heavy: ``custom_optimizers.rules`` (and anything else
that needs no TensorFlow) loads on its own, and a class loads, with TensorFlow, when it is
first named (``custom_optimizers.Lion``, ``from custom_optimizers import Lion``).
Loading a class registers it with Keras's serialization; ``load_all()`` loads every one,
so that a saved ``.keras`` model that uses any of them loads (``import custom_optimizers``
does that at once when Keras is already imported).
"""

from __future__ import annotations

import importlib
import sys

from custom_optimizers import rules

_SHARED = {  # name -> the module that defines it (each imports TensorFlow)
    "LectureOptimizer": "custom_optimizers._base",
    "AdaptiveLectureOptimizer": "custom_optimizers._base",
    "clip_gradient": "custom_optimizers._base",
    "CLIP_MODES": "custom_optimizers.rules",
    "RANGES": "custom_optimizers._checks",
}
_SUBMODULES = ("capabilities", "reference", "twins")


def load_all() -> dict:
    """Every rule's class, by class name (registering each with Keras's serialization)."""
    return {cls.__name__: cls for cls in (rule.load_class() for rule in rules.all_rules())}


def _class_names() -> dict:
    """Class name -> its rule, from the rules' modules, without importing a class: the
    class of rule ``name`` is named like its NumPy reference (``rules/<name>.py``)."""
    return {rule.reference.__name__: rule for rule in rules.all_rules()}


def __getattr__(name):
    if name in _SHARED:
        value = getattr(importlib.import_module(_SHARED[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        rule = _class_names().get(name)
        if rule is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = rule.load_class()
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = [*_class_names(), *_SHARED, "load_all", "rules", *_SUBMODULES]

if "keras" in sys.modules:  # cheap now: a saved model then loads after `import custom_optimizers`
    load_all()
