"""Hyperparameter checks, free of TensorFlow so a config can be refused before it loads.

The valid range of each lecture hyperparameter is written once, here; the optimizers
check their arguments with it, and the experiments check a config with it before any
TensorFlow import.
"""

from __future__ import annotations

import math
import numbers

CLIP_MODES = ("norm", "sign")

# name -> (low, high, low_open, high_open); None means unbounded on that side.
RANGES = {
    "learning_rate": (0.0, None, False, False),
    "momentum": (0.0, 1.0, False, True),
    "rho": (0.0, 1.0, False, True),
    "beta_1": (0.0, 1.0, False, True),
    "beta_2": (0.0, 1.0, False, True),
    "epsilon": (0.0, None, False, False),
    "clip_threshold": (0.0, None, True, False),
}


def _interval(low, high, low_open, high_open):
    lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
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
        raise ValueError(
            f"{name}={value!r} is out of range: valid values are in "
            f"{_interval(low, high, low_open, high_open)}"
        )
    return value


def check_hyperparameter(key, value, label=None):
    """Check one lecture hyperparameter against ``RANGES``; ``label`` names it in errors.

    ``clip_threshold=None`` means no clipping and passes unchanged.
    """
    label = label or key
    if key == "clip_threshold" and value is None:
        return None
    if key == "clip_mode":
        if value not in CLIP_MODES:
            raise ValueError(
                f"{label}={value!r} is not valid: choose one of {', '.join(CLIP_MODES)}"
            )
        return value
    low, high, low_open, high_open = RANGES[key]
    return check_number(label, value, low=low, high=high, low_open=low_open,
                        high_open=high_open)
