"""The lecture's challenges on 2D test functions, run by ``python -m experiments.landscape``.

Each landscape is a function ``f(x, y)`` with a known minimum (the saddle has none: there
the question is whether an optimizer escapes). Every optimizer of the product runs on it
through its real class: ``experiments.core.optim.build_optimizer`` on an ``optimizer`` option,
``apply_gradients`` on a ``tf.Variable`` of shape (2,), all steps in one compiled
``tf.function``. The lecture's two baselines run beside them on the same budget: brute-force
grid search and greedy search (random local moves, keep the best).

=================  ==========================================================  =============
landscape          f(x, y)                                                     minimum
=================  ==========================================================  =============
``saddle``         ``x² - y²``                                                 none (saddle
                                                                               at the origin)
``ill_conditioned`` ``(x² + κ y²) / 2``, κ = ``condition``                       (0, 0)
``rosenbrock``     ``(1 - x)² + 100 (y - x²)²``                                (1, 1)
``beale``          ``(1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²``  (3, 0.5)
``local_minima``   ``(x² + y²)/2 + a (2 - cos 2πx - cos 2πy)``, a = ``ripple``  (0, 0)
                   (a = 0.25: nine local minima, near (i, j) * 0.9 for i, j in {-1, 0, 1})
``cliff``          ``((x-1)² + y²)/2 + H (1 - smoothstep(x / w))``: a plateau    (1, 0)
                   of height H (x < 0) ends in a cliff face of width w whose
                   gradient, up to 1.5 H / w, throws a plain step far past it
=================  ==========================================================  =============

Each function is written once for NumPy and TensorFlow alike: ``m`` is the math namespace
(``numpy`` or ``tf.math``). The package's modules: ``functions`` (the test functions),
``methods`` (optimizers and baselines on one landscape, their summaries), ``config``
(schemas and checks) and ``pipeline`` (one tracked run). None imports TensorFlow or
matplotlib at import time, so ``validate`` refuses a bad config before either loads.
"""

from experiments.landscape.config import (LANDSCAPE_SCHEMAS, CliffSchema,
                                           IllConditionedSchema, LandscapeAppSchema,
                                           LandscapeSchema, LocalMinimaSchema,
                                           OptimizerOverrides, optimizer_configs,
                                           optimizer_options, register_schemas, validate)
from experiments.landscape.functions import (LANDSCAPES, Landscape, beale, cliff,
                                              ill_conditioned, local_minima, objective,
                                              rosenbrock, saddle)
from experiments.landscape.methods import (Trajectory, greedy_search, grid_search, optimize,
                                            summarize)
from experiments.landscape.pipeline import markdown_table, run

__all__ = [
    "LANDSCAPES", "Landscape", "objective", "saddle", "ill_conditioned", "rosenbrock", "beale",
    "local_minima", "cliff", "Trajectory", "optimize", "grid_search", "greedy_search",
    "summarize", "LandscapeSchema", "IllConditionedSchema", "LocalMinimaSchema", "CliffSchema",
    "LANDSCAPE_SCHEMAS", "OptimizerOverrides", "LandscapeAppSchema", "register_schemas",
    "optimizer_options", "optimizer_configs", "validate", "markdown_table", "run",
]
