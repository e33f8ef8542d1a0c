"""Plain (stochastic) gradient descent, the lecture's "old gradient descent"."""

import keras
import tensorflow as tf
from keras import ops

from custom_optimizers._base import LectureOptimizer
from custom_optimizers.rules.sgd import RULE


class SGD(LectureOptimizer, rule=RULE):
    r"""Gradient descent: ``W <- W - lr * g``.

    Formula card (lecture: "Old gradient descent")::

        W(t+1) = W(t) - η g(t)

    * η → ``learning_rate`` (default 0.1, the lab's; Keras's SGD has 0.01). No state.
    * Same as ``keras.optimizers.SGD(learning_rate)`` with ``momentum=0``.
    * A sparse gradient (``tf.IndexedSlices``) is applied sparsely with a scatter, which
      is exact here because the rule has no state to decay.
    """

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        if self.clip_threshold is None and isinstance(gradient, tf.IndexedSlices):
            # Scatter-subtract lr * rows; duplicate indices add up, as the dense sum would.
            values = ops.multiply(ops.cast(gradient.values, variable.dtype), lr)
            self.assign_sub(
                variable, tf.IndexedSlices(values, gradient.indices, gradient.dense_shape)
            )
            return
        gradient = self._prepare_gradient(gradient, variable)
        # W -= lr*g in TensorFlow's fused kernel (XLA has it too): one pass over memory
        # where multiply-then-assign_sub takes two.
        tf.raw_ops.ResourceApplyGradientDescent(
            var=(variable.value if isinstance(variable, keras.Variable) else variable).handle,
            alpha=lr, delta=gradient)
