"""NAdam: Adam with Nesterov momentum and Dozat's momentum schedule."""

import math

from keras import ops

from custom_optimizers._base import moving_average, step_divide
from custom_optimizers.adam import Adam
from custom_optimizers.rules.nadam import RULE

# Terms of the series for log Π(1 - 0.5 q^i) (see ``_momentum_products``): the k-th term is
# at most t 0.5^k / k, below 1e-16 of the sum for k > 60 while the product is above 1e-300.
_SERIES_TERMS = 64


class NAdam(Adam, rule=RULE):
    r"""NAdam: Adam whose momentum looks one step ahead, with a warming-up momentum.

    Formula card (Dozat 2016, "Incorporating Nesterov Momentum into Adam"; as PyTorch's
    ``torch.optim.NAdam``)::

        μ(t)   = ρ1 (1 - 0.5 · 0.96^(ψ t))                       (momentum schedule)
        v(t)   = ρ1 v(t-1) + (1 - ρ1) g(t)              v(0) = 0  (first moment)
        r(t)   = ρ2 r(t-1) + (1 - ρ2) g(t)²             r(0) = 0  (second moment)
        v̂(t)   = μ(t+1) v(t) / (1 - Π_{i≤t+1} μ(i)) + (1 - μ(t)) g(t) / (1 - Π_{i≤t} μ(i))
        r̂(t)   = r(t) / (1 - ρ2^t)
        W(t+1) = W(t) - ε / (δ + sqrt(r̂(t))) v̂(t)

    * ε → ``learning_rate`` (default 0.001), ρ1 → ``beta_1`` (0.9), ρ2 → ``beta_2``
      (0.999), ψ → ``momentum_decay`` (0.004, the paper's and PyTorch's default), δ →
      ``epsilon`` (1e-7), added outside the root of the *corrected* r̂, as in Adam.
    * μ(t) warms up from ρ1/2 towards ρ1, the gap halving every 17/ψ steps: every ~4200
      steps with ψ = 0.004, every 17 with ψ = 1.
    * Where the three agree: this class with ``momentum_decay=ψ`` computes PyTorch's
      ``NAdam(lr, betas=(ρ1, ρ2), eps=δ, momentum_decay=ψ)`` for every ψ (δ placed alike).
      ``keras.optimizers.Nadam(lr, ρ1, ρ2, epsilon=δ)`` hard-codes 0.96^t, i.e. ψ = 1, and
      also adds its epsilon to the root of the corrected r̂: it equals this class with
      ``momentum_decay=1`` (float rounding apart) and no Keras setting gives ψ = 0.004.
    * The products Π μ(i) are computed from t in closed form (a fast-converging series),
      so the optimizer keeps no state beyond v and r and every step is independent of how
      the steps were batched, replicated or accumulated.
    * Composed from ``Adam`` where the math is Adam's: the hyperparameters ρ1, ρ2, δ and
      their checks, the state v and r, and ``effective_learning_rates`` (Adam's with bias
      correction, which is always on here). The step and the config are its own.
    """

    fixed = {"bias_correction": True}  # Adam's update with its bias correction, always
    static_hyperparameters = ("momentum_decay",)  # `if log_q == 0.0`, in Python

    def _momentum(self, t):
        """μ(t) = ρ1 (1 - 0.5 · 0.96^(ψ t)), float64."""
        return self.beta_1 * (1.0 - 0.5 * ops.exp(t * (self.momentum_decay * math.log(0.96))))

    def _momentum_product(self, t):
        """Π_{i=1..t} μ(i), float64, without a loop over i.

        log Π (1 - 0.5 q^i) = -Σ_k 0.5^k/k Σ_i q^(ik) with q = 0.96^ψ, and the inner sum is
        geometric: q^k (1 - q^(kt)) / (1 - q^k), or t when q = 1 (ψ = 0).
        """
        k = ops.arange(1, _SERIES_TERMS + 1, dtype="float64")
        log_q = self.momentum_decay * math.log(0.96)
        if log_q == 0.0:
            inner = t * ops.ones_like(k)
        else:
            inner = ops.exp(k * log_q) * ops.expm1(k * t * log_q) / ops.expm1(k * log_q)
        log_product = -ops.sum(ops.power(0.5, k) / k * inner)
        return ops.power(ops.convert_to_tensor(self.beta_1, "float64"), t) * ops.exp(log_product)

    def _scalars(self, dtype):
        """The step's scalars ``μ(t+1)/(1-Π_{t+1})``, ``(1-μ(t))/(1-Π_t)`` and
        ``1/sqrt(1-ρ2^t)``, cast to the variables' dtype."""
        t = ops.cast(self.iterations + 1, "float64")
        mu, mu_next = self._momentum(t), self._momentum(t + 1.0)
        product = self._momentum_product(t)
        ahead = mu_next / (1.0 - product * mu_next)
        now = (1.0 - mu) / (1.0 - product)
        second = ops.rsqrt(1.0 - ops.power(ops.convert_to_tensor(self.beta_2, "float64"), t))
        return [ops.cast(x, dtype) for x in (ahead, now, second)]

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = self._prepare_gradient(gradient, variable)
        v = self.momentums[self._get_variable_index(variable)]
        r = self.velocities[self._get_variable_index(variable)]
        ahead, now, second = self._scalars(variable.dtype)
        # ε/(δ + sqrt(r)/c) * (ahead*v + now*g), numerator and denominator times c =
        # sqrt(1-ρ2^t) = 1/second.
        self._run_kernel(_nadam_kernel, variable, (v, r), gradient,
                         self.beta_1, 1.0 - self.beta_1, self.beta_2, 1.0 - self.beta_2,
                         ahead, now, lr / second, self.epsilon / second,
                         guard_zero=self._guard_zero(self.epsilon, variable.dtype,
                                                     (1.0 - self.beta_2) ** 0.5))


def _nadam_kernel(w, v, r, g, b1, one_minus_b1, b2, one_minus_b2, ahead, now, step_scale,
                  delta, guard_zero):
    """One NAdam update of ``w`` and its moments ``v``, ``r`` (see ``NAdam.update_step``)."""
    v.assign(moving_average(v, g, b1, one_minus_b1))
    r.assign(moving_average(r, ops.square(g), b2, one_minus_b2))
    # 0/0 only where r = 0 (δ = 0 allowed; see step_divide).
    w.assign_sub(step_divide(
        ops.multiply(ops.add(ops.multiply(v, ahead), ops.multiply(g, now)), step_scale),
        ops.add(ops.sqrt(r), delta), guard_zero))
