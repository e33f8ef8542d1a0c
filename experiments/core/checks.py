"""The floor of ``experiments``: the refusal types and small argument checks shared by the
config, schedule, data and model layers. It imports nothing of the project but the rule
registry's loader (``experiments.core.registry``, itself free of project imports), so every
module can import it at the top without a circle.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Mapping

from experiments.core import registry


class Refusal(Exception):
    """What a command refuses before any run exists: a user's mistake or a missing
    prerequisite. ``experiments.core.cli.refusing`` prints ``<prefix>: <message>`` as one
    line and exits with code 2; every refusal type of the project derives from this one."""

    prefix = "Error"


class ConfigError(Refusal, ValueError):
    """A config that composes but cannot run; its message is one line for the user."""

    prefix = "Error in config"


def is_int(value: Any) -> bool:
    """An integer, NumPy's included; ``True``/``False`` are not."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number, NumPy's included; ``True``/``False`` are not."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def reject_unknown(params: Mapping[str, Any], schema: type, what: str) -> list[str]:
    """Raise ``ValueError`` naming any key of ``params`` that ``schema`` (a dataclass) lacks,
    with the valid ones; return the valid names."""
    valid = [f.name for f in dataclasses.fields(schema)]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for {what}; "
            f"valid parameters: {', '.join(valid)}"
        )
    return valid


def check_range(label: str, value: Any, *, low=None, high=None, low_open: bool = False,
                high_open: bool = False) -> Any:
    """``value`` when it lies in the interval (None for an unbounded side), else a one-line
    ``ConfigError``: ``label=value is out of range: valid values are in [low, high)``, the
    same words as the optimizers' hyperparameter checks. ``None`` (unset) passes."""
    if value is None:
        return None
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    if not (above and below):
        interval = registry.interval(low, high, low_open, high_open)
        raise ConfigError(f"{label}={value!r} is out of range: valid values are in {interval}")
    return value
