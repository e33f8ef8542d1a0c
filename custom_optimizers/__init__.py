"""The lecture's optimizers as Keras 3 optimizers (``keras.optimizers.Optimizer``).

>>> from custom_optimizers import SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam

Each class docstring is its formula card: the exact rule, the initial state, where
epsilon sits and how it differs from the Keras built-in. ``custom_optimizers.rules``
describes every rule once (class, NumPy reference, hyperparameters and their ranges,
Keras twin, ...), free of TensorFlow; ``custom_optimizers.reference`` gathers the
independent NumPy implementations.

Importing the package imports every rule's class, which registers it with Keras's
serialization, so a saved ``.keras`` model that uses one loads after a plain
``import custom_optimizers``.
"""

from custom_optimizers import rules
from custom_optimizers._base import AdaptiveLectureOptimizer, LectureOptimizer, clip_gradient
from custom_optimizers._checks import CLIP_MODES, RANGES

_CLASSES = {rule.name: rule.load_class() for rule in rules.all_rules()}
globals().update({cls.__name__: cls for cls in _CLASSES.values()})

__all__ = [
    *(cls.__name__ for cls in _CLASSES.values()),
    "LectureOptimizer",
    "AdaptiveLectureOptimizer",
    "clip_gradient",
    "CLIP_MODES",
    "RANGES",
    "rules",
]
