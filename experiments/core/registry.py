"""The rule registry (``custom_optimizers.rules``) for the experiments, without TensorFlow.

``import custom_optimizers`` imports TensorFlow (its ``__init__`` registers the optimizers
with Keras); the rule descriptions need nothing but Python, and a refused config must
answer fast. ``tf_free_import`` loads a submodule of ``custom_optimizers`` without running
the package's ``__init__``; a later ``import custom_optimizers`` finds it in place.
"""

from __future__ import annotations

import importlib.util
import os
import sys

_PACKAGE = "custom_optimizers"


def tf_free_import(name: str):
    """The module ``custom_optimizers.<name>`` (a file or a package), loaded on its own."""
    full = f"{_PACKAGE}.{name}"
    if full in sys.modules:
        return sys.modules[full]
    location = importlib.util.find_spec(_PACKAGE).submodule_search_locations[0]
    path = f"{location}/{name.replace('.', '/')}"
    if os.path.isfile(f"{path}/__init__.py"):
        spec = importlib.util.spec_from_file_location(
            full, f"{path}/__init__.py", submodule_search_locations=[path])
    else:
        spec = importlib.util.spec_from_file_location(full, f"{path}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full]
        raise
    return module


def _rules():
    return tf_free_import("rules")


def rules() -> tuple:
    """Every optimizer rule (``custom_optimizers.rules.Rule``), in order."""
    return _rules().all_rules()


def rule(name: str):
    """The rule called ``name``; a ValueError naming the valid names otherwise."""
    return _rules().get(name)


def rule_names() -> tuple[str, ...]:
    """The rules' names, in order (``sgd``, ``momentum``, ...)."""
    return _rules().names()


def option_name(rule_name: str, implementation: str = "custom") -> str:
    """The ``conf/optimizer`` option of a rule's implementation: ``adam``, ``keras_adam``."""
    return rule_name if implementation == "custom" else f"keras_{rule_name}"


def parse_option(option: str) -> tuple[str, str]:
    """``(rule name, implementation)`` of a ``conf/optimizer`` option, the inverse of
    ``option_name`` (for labels that are option names; runs carry both as tags)."""
    for implementation in ("custom", "keras"):
        for name in rule_names():
            if option_name(name, implementation) == option:
                return name, implementation
    return option, "custom"


def optimizer_names() -> tuple[str, ...]:
    """Every ``conf/optimizer`` option: the rules' names, then ``keras_<name>`` for each
    rule with a Keras twin."""
    return rule_names() + tuple(option_name(r.name, "keras") for r in rules()
                                if r.keras is not None)
