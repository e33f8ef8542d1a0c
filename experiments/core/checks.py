"""The floor of ``experiments``: the refusal types and small argument checks shared by the
config, schedule, data and model layers. It imports nothing of the project but the rule
registry's loader (``experiments.core.registry``, itself free of project imports), so every
module can import it at the top without a circle.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from pathlib import Path
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


#: The largest integer any config takes unless ``check_numbers`` is given a tighter (or
#: wider: seeds) limit for it: beyond it a count of steps, units or devices is a typo
#: that would overflow NumPy's int64 arithmetic or exhaust the memory long after start.
MAX_INT = 2**31 - 1
MAX_SEED = 2**32 - 1  # NumPy's and Keras's seeds are unsigned 32-bit
#: The integers with a bound of their own, by dotted key (the longest key that ends a
#: config's path applies): what would exhaust the memory or the machine before a single
#: step, where a typo adds zeros.
INT_LIMITS = {
    "seed": MAX_SEED,
    "model.width": 16_384,  # one dense layer 16k x 16k is 1 GiB of float32
    "model.depth": 1_000,
    "model.channels": 16_384,
    "model.units": 16_384,
    "trainer.curvature_iterations": 1_000,  # the Lanczos basis: iterations x weights
    "trainer.curvature_probes": 1_000,
    "trainer.logical_cpus": 256,
}


def check_range(label: str, value: Any, *, low=None, high=None, low_open: bool = False,
                high_open: bool = False) -> Any:
    """``value`` when it lies in the interval (None for an unbounded side), else a one-line
    ``ConfigError``: ``label=value is out of range: valid values are in [low, high)``, the
    same words as the optimizers' hyperparameter checks. A number that is not finite
    (``inf``, ``nan``) is refused whatever the bounds; ``None`` (unset) passes."""
    if value is None:
        return None
    if is_real(value) and not math.isfinite(value):
        raise ConfigError(f"{label}={value!r} is not a finite number")
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    if not (above and below):
        if low is None and not high_open:
            raise ConfigError(f"{label}={value!r} is out of range: valid values are at most "
                              f"{high!r}")
        interval = registry.interval(low, high, low_open, high_open)
        raise ConfigError(f"{label}={value!r} is out of range: valid values are in {interval}")
    return value


def _limit(path: str, limits: Mapping[str, int]) -> int:
    """The upper bound of the integer at dotted ``path``: the limit of the longest key of
    ``limits`` that ends the path (``seed`` covers ``trainer.seed`` and ``dataset.seed``),
    else ``MAX_INT``."""
    keys = [k for k in limits if path == k or path.endswith("." + k)]
    return limits[max(keys, key=len)] if keys else MAX_INT


def check_numbers(config: Any, limits: Mapping[str, int] = INT_LIMITS,
                  prefix: str = "") -> None:
    """The range check of a whole config (nested mappings and lists, as
    ``OmegaConf.to_container`` gives): every float finite, every integer at most its limit
    (``limits``, by dotted key, else ``MAX_INT``); every command's config passes it
    (``experiments.core.cli``). One-line ``ConfigError`` naming the key,
    e.g. ``model.width=1000000000 is out of range: valid values are in (-inf, 65536]``."""
    if isinstance(config, Mapping):
        for key, value in config.items():
            check_numbers(value, limits, f"{prefix}{key}.")
        return
    label = prefix.rstrip(".")
    if isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            check_numbers(value, limits, f"{label}[{i}].")
    elif is_int(config):
        check_range(label, config, high=_limit(label, limits))
    elif is_real(config):
        check_range(label, config)


def check_folder(label: str, folder: str | os.PathLike) -> None:
    """Refuse (``ConfigError``, one line) an output folder that cannot be created or
    written, without leaving anything behind: a folder is made and removed again in the
    nearest existing parent (in the folder itself when it exists)."""
    import tempfile

    path = Path(folder).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError as err:
        raise ConfigError(f"{label}={folder} cannot be created or written: "
                          f"{err.strerror} in {existing}") from None
