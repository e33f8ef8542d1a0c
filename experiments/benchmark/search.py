"""The benchmark's draws: quasi-random hyperparameter points and trial seeds.

Paired design: the points of study ``s`` on workload ``w`` are one scrambled Halton
sequence in ``DIMENSIONS`` dimensions, drawn fresh for every (workload, study) and shared
by every rule *in quantile space*: a rule's k-th search dimension (in the order of its
``search_space``, the learning rate first) reads the k-th coordinate. Trial t of that study
has the same seed (initial weights, batch order) for every rule. Two rules are so compared
on the same luck of the draw, and their difference is a paired one.

Each use has its own seed stream (``STREAMS``): the calibration never sees the points or
seeds that the benchmark's studies use.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Mapping

import numpy as np

#: coordinates of a draw; a rule may search at most this many hyperparameters. Fixed, so a
#: rule added to the registry does not change the other rules' points.
DIMENSIONS = 8
STREAMS = {"tuned": 1, "defaults": 2, "calibrate": 3, "calibrate_seeds": 4}


def to_value(u: float, dim) -> float:
    """Map ``u`` in [0, 1) onto a ``SearchDim`` (scale "log", "log1m" or "linear")."""
    lo, hi = float(dim.low), float(dim.high)
    if dim.scale == "linear":
        return lo + u * (hi - lo)
    x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    if dim.scale == "log1m":
        return 1.0 - x
    if dim.scale == "log":
        return x
    raise ValueError(f"unknown search scale {dim.scale!r}: use log, log1m or linear")


def _key(workload: str) -> int:
    return zlib.crc32(workload.encode())


def quantiles(k: int, seed: int, stream: str, workload: str, study: int) -> np.ndarray:
    """``k`` x ``DIMENSIONS`` points of a scrambled Halton sequence in [0, 1), fresh for
    every (seed, stream, workload, study)."""
    from scipy.stats import qmc

    rng = np.random.default_rng([seed, STREAMS[stream], _key(workload), study])
    return qmc.Halton(d=DIMENSIONS, scramble=True, seed=rng).random(k)


def points(space: Mapping[str, Any], u: np.ndarray) -> list[dict]:
    """The hyperparameters of ``space`` at the quantiles ``u`` (rows), dimension by
    dimension in the space's order."""
    names = list(space)
    if len(names) > DIMENSIONS:
        raise ValueError(f"a search space of {len(names)} dimensions: the benchmark draws "
                         f"at most {DIMENSIONS} (search.DIMENSIONS)")
    return [{n: to_value(float(row[i]), space[n]) for i, n in enumerate(names)} for row in u]


def sample(space: Mapping[str, Any], k: int, seed: int, workload: str, study: int,
           stream: str = "tuned") -> list[dict]:
    """``k`` points of ``space`` for one (workload, study) of one stream."""
    return points(space, quantiles(k, seed, stream, workload, study))


def trial_seed(seed: int, stream: str, workload: str, study: int, trial: int) -> int:
    """The seed of one trial's initial weights and batch order (the same for every rule)."""
    state = np.random.SeedSequence([seed, STREAMS[stream], _key(workload), study, trial])
    return int(state.generate_state(1)[0] % 2**31)
