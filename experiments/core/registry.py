"""The rule registry for the experiments, without TensorFlow: the rules
(``custom_optimizers.rules``) and the lab's settings of each (``conf/optimizer/lab``).

``custom_optimizers.rules`` needs nothing but Python (``import custom_optimizers`` loads a
class, and TensorFlow, only when one is named), so a refused config answers fast. What the
lab, not the optimizer library, knows of a rule (its colour, landscape learning rate,
search space, test arguments) is read here from ``conf/optimizer/lab/<rule>.yaml``
(``lab``).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Mapping

from custom_optimizers import rules as _rules_package
from custom_optimizers.rules import interval
from experiments.core import CONF

__all__ = ["interval", "rules", "rule", "rule_names", "option_name", "parse_option",
           "optimizer_names", "SearchDim", "LabSettings", "lab", "lab_file"]


def _rules():
    return _rules_package


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


# --------------------------------------------------------------------------- lab settings
@dataclasses.dataclass(frozen=True)
class SearchDim:
    """One dimension of a rule's workload-agnostic search space.

    ``scale``: ``"log"`` (the value log-uniform in [low, high]), ``"log1m"`` (1 - value
    log-uniform in [low, high], for decays close to 1) or ``"linear"``.
    """

    scale: str
    low: float
    high: float

    SCALES = ("log", "log1m", "linear")

    def __post_init__(self):
        if self.scale not in self.SCALES or not self.low < self.high:
            raise ValueError(f"SearchDim({self.scale!r}, {self.low}, {self.high}): the scale is "
                             f"one of {', '.join(self.SCALES)} and low < high")
        if self.scale != "linear" and self.low <= 0:
            raise ValueError(f"SearchDim({self.scale!r}, {self.low}, {self.high}): "
                             "a log scale needs low > 0")

    def value_range(self) -> tuple[float, float]:
        """The (smallest, largest) hyperparameter value this dimension reaches."""
        if self.scale == "log1m":
            return 1.0 - self.high, 1.0 - self.low
        return self.low, self.high


@dataclasses.dataclass(frozen=True)
class LabSettings:
    """What the lab, not the optimizer, knows of a rule (``conf/optimizer/lab/<name>.yaml``).

    ``colour``: of its lines in every plot (its Keras twin's dashed); ``landscape_learning_rate``:
    its η on the 2-D test functions; ``search_space``: the benchmark's and the Optuna presets'
    workload-agnostic space, the learning rate first; ``test_arguments``: hyperparameters under
    which every term of the rule matters (the shared tests).
    """

    colour: str
    landscape_learning_rate: float
    search_space: Mapping[str, SearchDim]
    test_arguments: Mapping[str, Any]

    KEYS = ("colour", "landscape_learning_rate", "search_space", "test_arguments")


def lab_file(name: str, conf: Path = CONF) -> Path:
    """Where rule ``name``'s lab settings live."""
    return Path(conf) / "optimizer" / "lab" / f"{name}.yaml"


@functools.cache
def lab(name: str, conf: Path = CONF) -> LabSettings:
    """Rule ``name``'s lab settings, read from ``lab_file`` and checked against the rule: every
    key known, every name one of the rule's hyperparameters, every value in its range. A
    one-line ValueError naming the file otherwise."""
    from omegaconf import OmegaConf

    rule_ = rule(name)
    path = lab_file(name, conf)
    if not path.is_file():
        raise ValueError(f"rule {name!r} has no lab settings: write {path.relative_to(conf.parent)}"
                         f" ({', '.join(LabSettings.KEYS)}; see docs/adding-a-rule.md)")
    data = OmegaConf.to_container(OmegaConf.load(path))
    where = f"{path.name} of rule {name!r}"
    if set(data) != set(LabSettings.KEYS):
        raise ValueError(f"{where} holds {', '.join(sorted(data))}: it holds exactly "
                         f"{', '.join(LabSettings.KEYS)}")
    space = {}
    try:
        for key, value in (data["search_space"] or {}).items():
            if not (isinstance(value, list) and len(value) == 3):
                raise ValueError(f"search_space.{key}={value!r} is not [scale, low, high]")
            space[key] = SearchDim(value[0], float(value[1]), float(value[2]))
        if next(iter(space), None) != "learning_rate":
            raise ValueError("the search space starts with learning_rate")
        settings = LabSettings(str(data["colour"]), float(data["landscape_learning_rate"]),
                               space, dict(data["test_arguments"] or {}))
        for key, dim in space.items():
            for value in dim.value_range():
                rule_.check(key, value, label=f"search_space.{key}")
        for key, value in settings.test_arguments.items():
            rule_.check(key, value, label=f"test_arguments.{key}")
        rule_.check("learning_rate", settings.landscape_learning_rate,
                    label="landscape_learning_rate")
    except KeyError as err:
        raise ValueError(f"{where}: {err.args[0]} is not a hyperparameter of the rule "
                         f"({', '.join(rule_.defaults())})") from None
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return settings
