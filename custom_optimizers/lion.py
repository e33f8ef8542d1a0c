"""Lion: the sign of an interpolated momentum (Chen et al. 2023)."""

from keras import ops

from custom_optimizers._base import LectureOptimizer, moving_average
from custom_optimizers.rules.lion import RULE


class Lion(LectureOptimizer, rule=RULE):
    r"""Lion: ``u <- sign(b1*m + (1-b1)*g); W <- W - lr*u; m <- b2*m + (1-b2)*g``.

    Formula card (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms")::

        u(t)   = sign(β1 m(t-1) + (1 - β1) g(t))                  (the update direction)
        W(t+1) = W(t) - η u(t)
        m(t)   = β2 m(t-1) + (1 - β2) g(t)              m(0) = 0

    * η → ``learning_rate`` (default 3e-4: the paper uses 3-10x smaller rates than for
      AdamW, since every weight moves by exactly η per step), β1 → ``beta_1`` (0.9),
      β2 → ``beta_2`` (0.99), both in [0, 1); β1 = 0 is sign descent (signSGD).
    * The lecture's sign clipping ``sign(g) u`` taken to its limit: every step is clipped,
      elementwise, to length η; the momentum only decides the sign. Two averages: the
      direction interpolates with β1, the state decays with β2 (β2 > β1 by default, so the
      state remembers longer than the direction looks back).
    * Not adaptive in the lecture's sense (no ``lr/(δ + sqrt(r))``): no epsilon, no
      second moment, half of Adam's state.
    * Equal to ``keras.optimizers.Lion(η, β1, β2)`` (the same three lines), which refuses
      β1 = 0.
    """

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.momentums = self.add_optimizer_variables(var_list, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = self._prepare_gradient(gradient, variable)
        m = self.momentums[self._get_variable_index(variable)]
        self._run_kernel(_lion_kernel, variable, (m,), gradient, lr, self.beta_1,
                         1.0 - self.beta_1, self.beta_2, 1.0 - self.beta_2)


def _lion_kernel(w, m, g, lr, b1, one_minus_b1, b2, one_minus_b2):
    """One Lion update of ``w`` and its momentum ``m`` (see ``Lion.update_step``)."""
    direction = ops.sign(moving_average(m, g, b1, one_minus_b1))
    w.assign_sub(ops.multiply(direction, lr))
    m.assign(moving_average(m, g, b2, one_minus_b2))
