"""The 2D test functions, each written once for NumPy and TensorFlow alike.

``m`` is the math namespace (``numpy`` or ``tf.math``); see the table in
``experiments.landscape``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

TAU = 2.0 * math.pi


def saddle(x, y, m):
    return x * x - y * y


def ill_conditioned(x, y, m, condition=50.0):
    return 0.5 * (x * x + condition * y * y)


def rosenbrock(x, y, m):
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def beale(x, y, m):
    return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2
            + (2.625 - x + x * y * y * y) ** 2)


def local_minima(x, y, m, ripple=0.25):
    return 0.5 * (x * x + y * y) + ripple * (2.0 - m.cos(TAU * x) - m.cos(TAU * y))


def cliff(x, y, m, height=100.0, width=0.25):
    u = x / width
    u = 0.5 * (m.abs(u) - m.abs(u - 1.0) + 1.0)  # clip(x / width, 0, 1), for NumPy and TF
    return 0.5 * ((x - 1.0) ** 2 + y * y) + height * (1.0 - u * u * (3.0 - 2.0 * u))


@dataclass(frozen=True)
class Landscape:
    """A test function with what is known about it."""

    function: Callable
    minimum: Optional[tuple]  # the global minimum, None where there is none (saddle)
    saddle: Optional[tuple] = None  # a saddle point to escape from
    params: tuple = ()  # keyword parameters of ``function`` (from the config)


LANDSCAPES = {
    "saddle": Landscape(saddle, None, saddle=(0.0, 0.0)),
    "ill_conditioned": Landscape(ill_conditioned, (0.0, 0.0), params=("condition",)),
    "rosenbrock": Landscape(rosenbrock, (1.0, 1.0)),
    "beale": Landscape(beale, (3.0, 0.5)),
    "local_minima": Landscape(local_minima, (0.0, 0.0), params=("ripple",)),
    "cliff": Landscape(cliff, (1.0, 0.0), params=("height", "width")),
}


def objective(cfg_landscape) -> tuple[Landscape, Callable]:
    """The landscape named by a ``landscape`` config and ``f(x, y, m)`` with its parameters."""
    spec = LANDSCAPES[cfg_landscape["name"]]
    kwargs = {k: float(cfg_landscape[k]) for k in spec.params}
    return spec, lambda x, y, m: spec.function(x, y, m, **kwargs)
