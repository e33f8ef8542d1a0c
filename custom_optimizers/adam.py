"""Adam: RMSProp plus momentum, with bias correction of both moving averages."""

from keras import ops

from custom_optimizers._base import (AdaptiveLectureOptimizer, as_dtype, moving_average,
                                     step_divide)
from custom_optimizers.rules.adam import RULE


class Adam(AdaptiveLectureOptimizer, rule=RULE):
    r"""Adam: ``W <- W - lr / (delta + sqrt(r/(1-b2**t))) * v/(1-b1**t)``.

    Formula card (lecture: "Adam: RMSProp + Momentum", "Bias Correction")::

        v(t)   = ρ1 v(t-1) + (1 - ρ1) g(t)              v(0) = 0  (first moment)
        r(t)   = ρ2 r(t-1) + (1 - ρ2) g(t)²             r(0) = 0  (second moment)
        v̂(t)   = v(t) / (1 - ρ1^t),  r̂(t) = r(t) / (1 - ρ2^t)     (t = 1, 2, ...)
        W(t+1) = W(t) - ε / (δ + sqrt(r̂(t))) v̂(t)

    * ε → ``learning_rate`` (default 0.001), ρ1 → ``beta_1`` (0.9), ρ2 → ``beta_2``
      (0.999), δ → ``epsilon`` (1e-7), added outside the root of the *corrected* r̂.
    * ``bias_correction=False`` uses v and r as they are (the lecture's first Adam
      slide): with zero initial state the first step is then scaled by
      ``(1-ρ1)/sqrt(1-ρ2)`` — about 3.2 with the defaults, so *larger*, not smaller — and
      the t-th by ``(1-ρ1^t)/sqrt(1-ρ2^t)``, which is what the correction removes.
    * Differs from ``keras.optimizers.Adam``, which folds the correction into the
      learning rate and adds its epsilon to the uncorrected ``sqrt(r)`` ("epsilon hat"):
      the two agree when both epsilons are 0. PyTorch places δ as the lecture does.
    """

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.momentums, self.velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )

    def update_step(self, gradient, variable, learning_rate):
        v = self.momentums[self._get_variable_index(variable)]
        r = self.velocities[self._get_variable_index(variable)]
        adam_step(self, variable, (v, r), self._prepare_gradient(gradient, variable),
                  ops.cast(learning_rate, variable.dtype), self.bias_correction)

    def effective_learning_rates(self):
        """``ε / (δ + sqrt(r̂_j))``: the factor the corrected first moment v̂ is scaled by."""
        lr = self._get_current_learning_rate()
        rates = []
        for r in self.velocities:
            # Report the state as it stands after the last step (t = iterations).
            t = ops.maximum(ops.cast(self.iterations, r.dtype), 1.0)
            b2 = ops.convert_to_tensor(self.beta_2, dtype=r.dtype)
            second = ops.rsqrt(1.0 - ops.power(b2, t)) if self.bias_correction else 1.0
            rates.append(ops.cast(lr, r.dtype) / (ops.sqrt(r) * second + self.epsilon))
        return rates


def _adam_kernel(w, v, r, g, b1, one_minus_b1, b2, one_minus_b2, step_scale, delta,
                 guard_zero):
    """One Adam update of ``w`` and its moments ``v``, ``r`` (see ``Adam.update_step``)."""
    v.assign(moving_average(v, g, b1, one_minus_b1))
    r.assign(moving_average(r, ops.square(g), b2, one_minus_b2))
    # 0/0 only where r = 0, hence v = 0: the step is 0 (δ = 0 allowed; see step_divide).
    w.assign_sub(step_divide(ops.multiply(v, step_scale), ops.add(ops.sqrt(r), delta),
                             guard_zero))


def adam_step(opt, variable, slots, gradient, lr, bias_correction=True):
    """Adam's corrected step on ``variable`` with ``opt``'s ``beta_1``, ``beta_2`` and
    ``epsilon`` (Python numbers or variables) and its moment ``slots`` ``(v, r)``; ``lr``
    already in the variable's dtype. Shared by ``Adam`` and the AdamW part of ``Muon``."""
    v, r = slots
    first = second = 1.0
    if bias_correction:  # scalars 1/(1-ρ1^t) and 1/sqrt(1-ρ2^t)
        t = ops.cast(opt.iterations + 1, variable.dtype)
        first = 1.0 / (1.0 - ops.power(as_dtype(opt.beta_1, variable.dtype), t))
        second = ops.rsqrt(1.0 - ops.power(as_dtype(opt.beta_2, variable.dtype), t))
    # ε/(δ + sqrt(r/c2)) * v/c1 with the scalar corrections folded out of the per-weight
    # work, numerator and denominator times sqrt(c2) = 1/second:
    # (ε*sqrt(c2)/c1) * v / (sqrt(r) + δ*sqrt(c2)).
    opt._run_kernel(_adam_kernel, variable, (v, r), gradient,
                    opt.beta_1, 1.0 - opt.beta_1, opt.beta_2, 1.0 - opt.beta_2,
                    lr * first / second, opt.epsilon / second,
                    guard_zero=opt._guard_zero(
                        opt.epsilon, variable.dtype,
                        (1.0 - opt.beta_2) ** 0.5 if bias_correction else 1.0))
