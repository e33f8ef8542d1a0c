"""Loss surfaces of trained networks (``python -m experiments.surface``; Li et al. 2018).

The optimizers of ``optimizers`` are trained from one shared initialisation (the same
``trainer.seed``) with ``trainer.weights_every_n_steps`` keeping their weights along the
way, or existing runs are read back by id (``runs``: their ``config/config.yaml`` and
``weights/trajectory.npz``). On the training loss (``trainer.loss``, over ``samples``
training examples) it then computes:

- ``lines``: the loss along the straight line from the initial weights to each solution
  and between every two solutions, at ``t`` in [-0.25, 1.25] (Goodfellow et al. 2015);
- ``contour``: f(θ* + αδ + βη) on a ``grid_points``² grid over [-span, span]² around the
  ``center`` optimizer's solution θ*, with random directions δ, η **filter-normalised**:
  every filter (the last axis of a kernel: a dense neuron, a conv output channel) of the
  direction is rescaled to the norm of the same filter of θ*, biases are zeroed;
- ``plane``: the two principal directions of all paths (θ_i − θ_0, shared between the
  optimizers; orthonormal, from an SVD), the loss on that plane and every path projected
  on it.

Grids go to ``surface.npz``; pictures (``lines.png``, ``contour.png``, ``paths.png``,
``paths.gif``) are drawn by ``experiments.landscape.plots``.
"""

from experiments.surface.config import (SurfaceSchema, config_digest, register_schemas,
                                        train_configs, validate)
from experiments.surface.grids import (LINE_RANGE, WeightPath, compute, evaluations,
                                       filter_normalized_direction, loss_grid, loss_line,
                                       pca_directions)
from experiments.surface.pipeline import run
from experiments.surface.plots import draw

__all__ = ["LINE_RANGE", "SurfaceSchema", "WeightPath", "compute", "config_digest", "draw",
           "evaluations", "filter_normalized_direction", "loss_grid", "loss_line",
           "pca_directions", "register_schemas", "run", "train_configs", "validate"]
