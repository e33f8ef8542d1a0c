"""The registry of optimizer rules: each rule described once, in its own module.

``custom_optimizers/rules/<name>.py`` defines ``RULE = Rule(...)`` (and the rule's NumPy
reference); every module here whose name does not start with ``_`` and that defines
``RULE`` is a rule, ordered by ``Rule.order``; ``register`` adds a rule declared
elsewhere (a user's own module). Everything that lists the rules — the Keras
serialization of ``custom_optimizers``, ``custom_optimizers.reference``, a program's config
schemas and checks, the Keras-twin translation — iterates over ``all_rules()``. Adding a
rule is adding its files.

Free of TensorFlow (``import custom_optimizers`` is too: a class loads when named).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from custom_optimizers.rules._reference import Reference, clip
from custom_optimizers.rules._rule import (CLIP_MODES, CLIP_THRESHOLD, LEARNING_RATE,
                                           Hyperparameter, KerasTwin, Rule,
                                           check_clip_mode, check_number, interval)

__all__ = ["Rule", "Hyperparameter", "KerasTwin", "Reference", "all_rules", "get", "register",
           "unregister",
           "names", "CLIP_MODES", "CLIP_THRESHOLD", "LEARNING_RATE", "check_clip_mode",
           "check_number", "clip", "interval"]


# Rules declared outside this package (``register``), by name.
_REGISTERED: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    """Add ``rule``, declared in a module of one's own (its class's module is
    ``rule.module``), to ``all_rules()``; a ValueError if its name or order is taken."""
    if rule.name in names():
        raise ValueError(f"a rule named {rule.name!r} is already registered")
    _REGISTERED[rule.name] = rule
    all_rules.cache_clear()
    try:
        all_rules()
    except ValueError:
        unregister(rule.name)
        raise
    return rule


def unregister(name: str) -> None:
    """Take a rule that ``register`` added out of ``all_rules()`` again."""
    if _REGISTERED.pop(name, None) is not None:
        all_rules.cache_clear()


@functools.cache
def all_rules() -> tuple[Rule, ...]:
    """Every rule of this package and every registered one, in ``Rule.order``."""
    found = list(_REGISTERED.values())
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        rule = getattr(module, "RULE", None)
        if isinstance(rule, Rule):
            if rule.name != info.name:
                raise ValueError(f"{module.__name__} defines rule {rule.name!r}: a rule's "
                                 f"module is named after it ({rule.name}.py)")
            found.append(rule)
    found.sort(key=lambda rule: rule.order)
    orders = [rule.order for rule in found]
    if len(set(orders)) != len(orders):
        raise ValueError(f"two rules share an order: {orders}")
    return tuple(found)


def names() -> tuple[str, ...]:
    """The rules' names, in order."""
    return tuple(rule.name for rule in all_rules())


def get(name: str) -> Rule:
    """The rule called ``name``; a ValueError naming the valid names otherwise."""
    for rule in all_rules():
        if rule.name == name:
            return rule
    raise ValueError(f"optimizer rule {name!r} is not known: choose one of {', '.join(names())}")
