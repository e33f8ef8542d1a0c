"""AdaGrad: per-weight learning rates from the running sum of squared gradients."""

from keras import ops

from custom_optimizers._base import AdaptiveLectureOptimizer, step_divide
from custom_optimizers.rules.adagrad import RULE


class AdaGrad(AdaptiveLectureOptimizer, rule=RULE):
    r"""AdaGrad: ``r <- r + g*g; W <- W - lr / (delta + sqrt(r)) * g``.

    Formula card (lecture: "AdaGrad")::

        r(t)   = r(t-1) + g(t)²                         r(0) = 0
        η_j(t) = ε / (δ + sqrt(r_j(t)))                 (effective learning rate)
        W(t+1) = W(t) - η(t) g(t)

    * ε → ``learning_rate`` (default 0.05, the lab's), δ → ``epsilon`` (default 1e-7), added
      *outside* the square root. r only grows, so the effective learning rate only falls.
    * Differs from ``keras.optimizers.Adagrad``, whose accumulator starts at 0.1 and whose
      epsilon sits inside the root (``lr * g / sqrt(acc + eps)``): the two agree when
      Keras has ``initial_accumulator_value=0`` and both epsilons are 0. PyTorch places
      δ as the lecture does.
    """

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.accumulators = self.add_optimizer_variables(var_list, "accumulator")

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = self._prepare_gradient(gradient, variable)
        r = self.accumulators[self._get_variable_index(variable)]
        self._run_kernel(_adagrad_kernel, variable, (r,), gradient, lr, self.epsilon,
                         guard_zero=self._guard_zero(self.epsilon, variable.dtype))

    def effective_learning_rates(self):
        lr = self._get_current_learning_rate()
        return [
            ops.cast(lr, r.dtype) / (ops.sqrt(r) + self.epsilon) for r in self.accumulators
        ]


def _adagrad_kernel(w, r, g, lr, delta, guard_zero):
    """One AdaGrad update of ``w`` and its sum ``r`` (see ``AdaGrad.update_step``)."""
    r.assign_add(ops.square(g))
    # With δ = 0 a weight whose gradients were all zero would get 0/0; its step is 0 (the
    # limit), as every weight whose r is 0 has g = 0 (see step_divide).
    w.assign_sub(step_divide(ops.multiply(g, lr), ops.add(ops.sqrt(r), delta), guard_zero))
