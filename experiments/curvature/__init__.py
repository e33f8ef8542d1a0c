"""Curvature of a network's training loss, from Hessian-vector products only.

- ``operators``: the loss as a function of one flat weight vector (``FlatLoss``), its
  Hessian-vector and Gauss–Newton-vector products;
- ``lanczos``: Lanczos (extreme eigenvalues), stochastic Lanczos quadrature (the spectral
  density), the top eigenvalue of a layer's diagonal block;
- ``trace``: Hutch++;
- ``spectrum``: one stored spectrum measurement (``curvature/spectrum/step_<N>.npz``);
- ``watch``: ``TrainingWatch``, what the trainer measures between steps;
- ``figures``: the spectrum pictures (matplotlib, imported on use).
"""

from experiments.curvature.lanczos import Quadrature, block_lambda_max, lanczos, slq
from experiments.curvature.operators import (OPERATORS, FlatLoss, flat_weights,
                                             per_example_loss)
from experiments.curvature.spectrum import Spectrum
from experiments.curvature.trace import hutchpp
from experiments.curvature.watch import (TrainingWatch, extreme_eigenvalues,
                                         inverse_preconditioner, measure_spectrum, subset)

__all__ = ["OPERATORS", "FlatLoss", "Quadrature", "Spectrum", "TrainingWatch",
           "block_lambda_max", "extreme_eigenvalues", "flat_weights", "hutchpp",
           "inverse_preconditioner", "lanczos", "measure_spectrum", "per_example_loss",
           "slq", "subset"]
