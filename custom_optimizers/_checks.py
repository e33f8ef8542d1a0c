"""Hyperparameter checks by name, free of TensorFlow (``custom_optimizers.RANGES``).

The valid range of each hyperparameter is written once, in the rule registry
(``custom_optimizers.rules``); the optimizers check their arguments with their own rule
(``LectureOptimizer``). ``RANGES`` gathers the ranges by name for a caller that has a name
and no rule, and ``check_hyperparameter`` checks against it.
"""

from __future__ import annotations

from custom_optimizers.rules import (CLIP_MODES, CLIP_THRESHOLD, LEARNING_RATE, all_rules,
                                     check_clip_mode, check_number)

__all__ = ["CLIP_MODES", "RANGES", "check_number", "check_hyperparameter"]


def _ranges():
    ranges = {hp.name: hp.range for hp in (LEARNING_RATE, CLIP_THRESHOLD)}
    for rule in all_rules():
        for hp in rule.hyperparameters:
            if isinstance(hp.default, bool):
                continue
            if ranges.setdefault(hp.name, hp.range) != hp.range:
                raise ValueError(f"rule {rule.name!r} gives {hp.name} the range {hp.range}, "
                                 f"another rule {ranges[hp.name]}: one name, one range")
    return ranges


# name -> (low, high, low_open, high_open); None means unbounded on that side.
RANGES = _ranges()


def check_hyperparameter(key, value, label=None):
    """Check one hyperparameter against ``RANGES``; ``label`` names it in errors.

    ``clip_threshold=None`` means no clipping and passes unchanged.
    """
    label = label or key
    if key == "clip_threshold" and value is None:
        return None
    if key == "clip_mode":
        return check_clip_mode(value, label)
    low, high, low_open, high_open = RANGES[key]
    return check_number(label, value, low=low, high=high, low_open=low_open,
                        high_open=high_open)
