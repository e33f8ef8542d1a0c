"""Small argument checks shared by the data and model layers (no heavy imports)."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Mapping


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
