"""RMSProp: AdaGrad with an exponentially weighted average of squared gradients."""

from keras import ops

from custom_optimizers._base import AdaptiveLectureOptimizer, moving_average, step_divide
from custom_optimizers.rules.rmsprop import RULE


class RMSProp(AdaptiveLectureOptimizer, rule=RULE):
    r"""RMSProp: ``r <- rho*r + (1-rho)*g*g; W <- W - lr / (delta + sqrt(r)) * g``.

    Formula card (lecture: "RMSProp")::

        r(t)   = ρ r(t-1) + (1 - ρ) g(t)²               r(0) = 0
        η_j(t) = ε / (δ + sqrt(r_j(t)))                 (effective learning rate)
        W(t+1) = W(t) - η(t) g(t)

    * ε → ``learning_rate`` (default 0.001), ρ → ``rho`` in [0, 1) (default 0.9),
      δ → ``epsilon`` (default 1e-7), outside the root. r forgets old gradients, so the
      effective learning rate can rise again, unlike AdaGrad's.
    * Differs from ``keras.optimizers.RMSprop``, whose epsilon sits inside the root
      (``lr * g / sqrt(r + eps)``): the two agree when both epsilons are 0 (and Keras's
      ``momentum=0``, ``centered=False``).
    """

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.velocities = self.add_optimizer_variables(var_list, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = self._prepare_gradient(gradient, variable)
        r = self.velocities[self._get_variable_index(variable)]
        self._run_kernel(_rmsprop_kernel, variable, (r,), gradient, lr, self.rho,
                         1.0 - self.rho, self.epsilon,
                         guard_zero=self._guard_zero(self.epsilon, variable.dtype))

    def effective_learning_rates(self):
        lr = self._get_current_learning_rate()
        return [ops.cast(lr, r.dtype) / (ops.sqrt(r) + self.epsilon) for r in self.velocities]


def _rmsprop_kernel(w, r, g, lr, rho, one_minus_rho, delta, guard_zero):
    """One RMSProp update of ``w`` and its average ``r`` (see ``RMSProp.update_step``)."""
    # r = rho*r + (1-rho)*g², as on the slide (and as Keras's RMSprop computes it).
    r.assign(moving_average(r, ops.square(g), rho, one_minus_rho))
    # 0/0 only where r = 0, i.e. every gradient so far was 0: step 0 (see step_divide).
    w.assign_sub(step_divide(ops.multiply(g, lr), ops.add(ops.sqrt(r), delta), guard_zero))
