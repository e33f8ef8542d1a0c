"""Momentum in the lecture's exponential-moving-average form."""

import keras
import tensorflow as tf
from keras import ops

from custom_optimizers._base import LectureOptimizer, as_dtype
from custom_optimizers.rules.momentum import RULE


class Momentum(LectureOptimizer, rule=RULE):
    r"""Gradient descent with momentum, EMA form: ``v <- a*v + (1-a)*g; W <- W - lr*v``.

    Formula card (lecture: "New gradient descent with momentum")::

        v(t)   = α v(t-1) + (1 - α) g(t)        v(0) = 0
        W(t+1) = W(t) - η v(t)

    * η → ``learning_rate`` (default 0.1: the step of Keras's default ``SGD(0.01,
      momentum=0.9)``, see below), α → ``momentum`` in [0, 1) (default 0.9);
      α = 0 is plain gradient descent.
    * v is an average of past gradients, so a step is never longer than ``lr * max|g|``.
    * Differs from ``keras.optimizers.SGD(momentum=m)``, whose buffer is
      ``m*v - lr*g`` (a sum, not an average): for a constant learning rate,
      ``Momentum(η, α) == keras.optimizers.SGD(learning_rate=η*(1-α), momentum=α)``.
      PyTorch's buffer is this ``v / (1-α)``.
    """

    nesterov = False  # Nesterov sets it: the same state, a step one momentum step ahead


    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.velocities = self.add_optimizer_variables(var_list, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = self._prepare_gradient(gradient, variable)
        v = self.velocities[self._get_variable_index(variable)]
        # v = a*v + (1-a)*g; W -= lr*v, both in TensorFlow's fused momentum kernel
        # (accum = accum*momentum + grad; var -= lr*accum, with grad = (1-a)*g; XLA has it
        # too). Written with keras.ops it takes one pass over memory more than Keras's
        # SGD, whose buffer already holds lr: 5-30% slower than it without XLA.
        # With use_nesterov (Nesterov): var -= grad*lr + accum*momentum*lr, i.e.
        # W -= lr*(a*v + (1-a)*g); 15-25% slower than SGD(nesterov=True) without XLA.
        # _prepare_gradient has made the gradient dense and of the variable's dtype.
        tf.raw_ops.ResourceApplyMomentum(
            var=(variable.value if isinstance(variable, keras.Variable) else variable).handle,
            accum=(v.value if isinstance(v, keras.Variable) else v).handle,
            lr=lr,
            grad=ops.multiply(gradient, as_dtype(1.0 - self.momentum, variable.dtype)),
            momentum=ops.convert_to_tensor(self.momentum, dtype=variable.dtype),
            use_nesterov=self.nesterov,
        )

