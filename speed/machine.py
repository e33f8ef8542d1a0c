"""What every speed benchmark reports beside its numbers: the machine it ran on, its load,
and the median of repeated timings with a bootstrap interval."""

from __future__ import annotations

import datetime
import os
import platform
from typing import Sequence

import numpy as np


def machine_info() -> dict:
    """CPU model, cores, library versions and date, for the table's header."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load": load_average(),
    }


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


BOOTSTRAP_RESAMPLES = 2000


def quantile(values: Sequence[float], q: float) -> float:
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


def median_interval(values: Sequence[float], level: float = 0.95, seed: int = 0):
    """Percentile-bootstrap ``level`` confidence interval of the median of ``values``."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, size=(BOOTSTRAP_RESAMPLES, len(values))), axis=1)
    tail = (1.0 - level) / 2
    return float(np.quantile(medians, tail)), float(np.quantile(medians, 1.0 - tail))
