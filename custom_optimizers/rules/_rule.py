"""What describes one optimizer rule: ``Rule``, its ``Hyperparameter``\\ s, its Keras twin.

Free of TensorFlow (and of everything but the standard library), so a config can be
checked against the rules before TensorFlow loads. The ranges of the hyperparameters are
written here, once: the optimizers check their arguments with them (``LectureOptimizer``
makes a declared class's checks from its rule), and so can a program that checks a
config before building an optimizer.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import numbers
from typing import Any, Callable, Mapping

CLIP_MODES = ("norm", "sign")

# rule name -> its Keras class, filled as each class is defined (``Rule.bind``).
_CLASSES: dict = {}


def interval(low, high, low_open=False, high_open=False) -> str:
    """``[0, 1)``, ``(0, inf)``: the interval as a reader writes it; None is unbounded."""
    def number(v):
        return str(v) if isinstance(v, int) else f"{v:g}"

    lo = "(-inf" if low is None else ("(" if low_open else "[") + number(low)
    hi = "inf)" if high is None else number(high) + (")" if high_open else "]")
    return f"{lo}, {hi}"


def check_number(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """Return ``value`` as a Python float, or raise a one-line ``ValueError``.

    Integers and NumPy scalars are numbers here (Hydra hands ``learning_rate=1`` in as an
    int); booleans, strings and non-finite values are not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or (value < high if high_open else value <= high)
    if not math.isfinite(value) or not (lo_ok and hi_ok):
        raise ValueError(f"{name}={value!r} is out of range: valid values are in "
                         f"{interval(low, high, low_open, high_open)}")
    return value


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: its Keras argument name, default and valid range.

    A boolean default makes a switch (true or false, no range). ``doc`` names the
    lecture's symbol and says what it does.
    """

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    doc: str = ""

    @property
    def range(self) -> tuple:
        return (self.low, self.high, self.low_open, self.high_open)

    def check(self, value, label: str | None = None):
        """``value`` as this hyperparameter's type, or a one-line ``ValueError``."""
        label = label or self.name
        if isinstance(self.default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{label} must be true or false, got {value!r}")
            return value
        return check_number(label, value, low=self.low, high=self.high,
                            low_open=self.low_open, high_open=self.high_open)


def decay(name, default, doc) -> Hyperparameter:
    """A moving-average decay (α, ρ, β): in [0, 1)."""
    return Hyperparameter(name, default, 0.0, 1.0, False, True, doc)


def epsilon(doc="δ, outside the square root", default=1e-7) -> Hyperparameter:
    return Hyperparameter("epsilon", default, 0.0, None, False, False, doc)


# The hyperparameters every rule has, whatever its own ones.
LEARNING_RATE = Hyperparameter("learning_rate", 0.01, 0.0, None, False, False,
                               "η (ε on the AdaGrad/RMSProp/Adam slides)")
CLIP_THRESHOLD = Hyperparameter("clip_threshold", None, 0.0, None, True, False,
                                "u: clip each gradient tensor whose norm exceeds u; None: never")


def check_clip_mode(value, label="clip_mode"):
    if value not in CLIP_MODES:
        raise ValueError(f"{label}={value!r} is not valid: choose one of {', '.join(CLIP_MODES)}")
    return value


def _yaml(value) -> str:
    """A value as a config writes it (``true``, ``0.004``)."""
    return str(value).lower() if isinstance(value, bool) else f"{value!r}"


@dataclasses.dataclass(frozen=True)
class KerasTwin:
    """The Keras built-in that implements a rule, and how the hyperparameters translate.

    ``arguments(hp)`` maps the rule's hyperparameters (``learning_rate`` and the rule's own)
    to the built-in's keyword arguments; ``refusal(hp)`` says why ``hp`` has no
    counterpart, or None. ``exact``: identical math under the translation. ``note``: where
    the two differ, in one or two sentences. ``fixed``: hyperparameters the built-in
    cannot vary, with the one value it implements (``keras_<name>.yaml`` sets them; any
    other value is refused). ``equal_when``: values under which the two compute the same
    numbers (up to rounding) although not ``exact``, e.g. ``{"epsilon": 0.0}`` where Keras
    puts epsilon elsewhere; the twin tests use them; None: no setting makes them compute
    the same numbers (``note`` says why). ``effective_learning_rates``: for an
    adaptive rule, the built-in's per-weight rate in its own conventions (a function of
    the Keras optimizer, importing Keras only when called). ``dtypes``: the variable dtypes
    the built-in runs in.
    """

    class_name: str
    exact: bool
    arguments: Callable[[Mapping[str, Any]], dict]
    refusal: Callable[[Mapping[str, Any]], str | None] | None = None
    note: str = ""
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    equal_when: Mapping[str, Any] | None = dataclasses.field(default_factory=dict)
    effective_learning_rates: Callable[[Any], list] | None = None
    dtypes: tuple[str, ...] = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One optimizer rule, described once; everything that lists the rules reads these.

    ``name`` names the rule (lower case: its declaration's module is ``rules/<name>.py``);
    ``module`` the module whose ``keras.optimizers.Optimizer`` declares ``rule=`` this rule
    (default ``custom_optimizers.<name>``; importing it binds the class, see ``bind``);
    ``reference`` its NumPy reference class; ``learning_rate`` the default η; ``adaptive``:
    the class has ``effective_learning_rates()``.
    ``base_weight_decay_refusal``: why the class refuses Keras's base ``weight_decay``
    (empty: it takes it, applied before the rule).
    """

    name: str
    title: str
    order: int
    reference: type
    learning_rate: float
    hyperparameters: tuple[Hyperparameter, ...]
    adaptive: bool
    keras: KerasTwin | None = None
    no_keras_reason: str = ""
    base_weight_decay_refusal: str = ""
    module: str = ""

    def __post_init__(self):
        if self.keras is None and not self.no_keras_reason:
            raise ValueError(f"rule {self.name!r}: without a Keras twin, say why "
                             "(no_keras_reason)")

    # ------------------------------------------------------------------ lookups
    def hyperparameter(self, name: str) -> Hyperparameter:
        """The rule's own hyperparameter ``name``, or learning_rate/clip_threshold."""
        if name == "learning_rate":
            return dataclasses.replace(LEARNING_RATE, default=self.learning_rate)
        if name == "clip_threshold":
            return CLIP_THRESHOLD
        for hp in self.hyperparameters:
            if hp.name == name:
                return hp
        raise KeyError(name)

    def defaults(self) -> dict:
        """``{"learning_rate": η, <own hyperparameter>: default, ...}``."""
        return {"learning_rate": self.learning_rate,
                **{hp.name: hp.default for hp in self.hyperparameters}}

    def check(self, name, value, label=None):
        """Check one of the rule's hyperparameters (or ``clip_mode``); one-line ValueError."""
        label = label or name
        if name == "clip_mode":
            return check_clip_mode(value, label)
        if name == "clip_threshold" and value is None:
            return None
        return self.hyperparameter(name).check(value, label)

    def bind(self, cls) -> None:
        """Make ``cls`` this rule's class (``class X(LectureOptimizer, rule=RULE)`` does)."""
        bound = _CLASSES.get(self.name)
        if bound is not None and bound.__qualname__ != cls.__qualname__:
            raise ValueError(f"rule {self.name!r} already has the class {bound.__qualname__}: "
                             f"one class per rule, not also {cls.__qualname__}")
        _CLASSES[self.name] = cls

    def load_class(self):
        """The ``keras.optimizers.Optimizer`` subclass (imports its module, and TensorFlow)."""
        module = self.module or f"custom_optimizers.{self.name}"
        importlib.import_module(module)
        if self.name not in _CLASSES:
            raise ValueError(f"{module} declares no optimizer for rule {self.name!r}: "
                             f"write class X(LectureOptimizer, rule=...) there")
        return _CLASSES[self.name]

    # ------------------------------------------------------------------ Keras twin
    def keras_refusal(self, hp: Mapping[str, Any]) -> str | None:
        """Why ``hp`` cannot be expressed with the Keras twin, or None if it can."""
        if self.keras is None:
            return f"optimizer {self.name!r} has no Keras counterpart: {self.no_keras_reason}"
        if hp.get("clip_threshold") is not None and hp.get("clip_mode", "norm") == "sign":
            return ("optimizer.clip_mode=sign has no Keras counterpart: use clip_mode=norm "
                    "(Keras clipnorm) or the custom optimizer")
        for name, value in self.keras.fixed.items():
            if name in hp and hp[name] != value:
                return (f"optimizer.{name}={_yaml(hp[name])} has no Keras counterpart: "
                        f"keras.optimizers.{self.keras.class_name} fixes {name}={_yaml(value)}; "
                        f"use optimizer={self.name} (the custom {self.title})")
        return self.keras.refusal(hp) if self.keras.refusal else None

    def keras_arguments(self, hp: Mapping[str, Any]) -> tuple[str, dict]:
        """The Keras twin's (class name, keyword arguments) that match ``hp``.

        The lecture's norm clipping becomes Keras's per-tensor ``clipnorm``.
        """
        if self.keras is None:
            raise ValueError(self.keras_refusal(hp))
        hp = {**self.defaults(), **dict(hp)}
        kwargs = self.keras.arguments(hp)
        if hp.get("clip_threshold") is not None:
            kwargs["clipnorm"] = float(hp["clip_threshold"])
        return self.keras.class_name, kwargs
