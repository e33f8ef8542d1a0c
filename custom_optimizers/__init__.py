"""The lecture's optimizers as Keras 3 optimizers (``keras.optimizers.Optimizer``).

>>> from custom_optimizers import SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam

Each class docstring is its formula card: the exact rule, the initial state, where
epsilon sits and how it differs from the Keras built-in. ``custom_optimizers.reference``
holds independent NumPy implementations of the same rules, and
``custom_optimizers._checks`` the valid hyperparameter ranges (both free of TensorFlow).

Importing the package registers every class with Keras's serialization, so a saved
``.keras`` model that uses one loads after a plain ``import custom_optimizers``.
"""

from custom_optimizers._base import AdaptiveLectureOptimizer, LectureOptimizer, clip_gradient
from custom_optimizers._checks import CLIP_MODES, RANGES
from custom_optimizers.adagrad import AdaGrad
from custom_optimizers.adam import Adam
from custom_optimizers.momentum import Momentum
from custom_optimizers.nesterov import Nesterov
from custom_optimizers.rmsprop import RMSProp
from custom_optimizers.sgd import SGD

__all__ = [
    "SGD",
    "Momentum",
    "Nesterov",
    "AdaGrad",
    "RMSProp",
    "Adam",
    "LectureOptimizer",
    "AdaptiveLectureOptimizer",
    "clip_gradient",
    "CLIP_MODES",
    "RANGES",
]
