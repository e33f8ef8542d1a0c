"""AdamW: decoupled weight decay, then the lecture's Adam (Loshchilov & Hutter 2019)."""

from keras import ops

from custom_optimizers._base import as_dtype
from custom_optimizers.adam import Adam
from custom_optimizers.rules.adamw import RULE


class AdamW(Adam, rule=RULE):
    r"""AdamW: ``W <- W (1 - lr*lambda)``, then Adam's ``W -= lr / (delta + sqrt(r̂)) * v̂``.

    Formula card (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization";
    ``torch.optim.AdamW``)::

        W'     = W(t) (1 - ε λ)                                  (decoupled decay first)
        v(t)   = ρ1 v(t-1) + (1 - ρ1) g(t)              v(0) = 0
        r(t)   = ρ2 r(t-1) + (1 - ρ2) g(t)²             r(0) = 0
        W(t+1) = W' - ε / (δ + sqrt(r(t)/(1 - ρ2^t))) v(t)/(1 - ρ1^t)

    * ε → ``learning_rate`` (default 0.001), ρ1 → ``beta_1`` (0.9), ρ2 → ``beta_2``
      (0.999), δ → ``epsilon`` (1e-7), outside the corrected root as in the lecture's
      Adam, λ → ``decoupled_weight_decay`` (0.01, PyTorch's default).
    * The gradient g is the loss's alone: the decay shrinks the weights directly instead
      of entering g as an L2 term, so Adam's 1/sqrt(r̂) does not rescale it (an L2 term
      ``λW`` in g would be divided by sqrt(r̂) like the rest: weights with large gradients
      would be decayed less).
    * The decay is one pass over the weights, Adam's step one kernel. Keras's base
      ``weight_decay`` is still there, as for every rule, applied before it.
    * Differs from ``keras.optimizers.AdamW(ε, weight_decay=λ, ρ1, ρ2, epsilon=δ)`` only
      where Adam's twin does: Keras adds its epsilon to the uncorrected sqrt(r).
    """

    fixed = {"bias_correction": True}  # Adam's update with its bias correction, always

    def update_step(self, gradient, variable, learning_rate):
        """``W *= 1 - ελ``, then Adam's ``update_step`` (its ``_run_kernel``).

        The shrink is its own pass over the weights, as in Keras's AdamW: fused into
        Adam's kernel, XLA contracts ``W(1-ελ) - step`` into a fused multiply-add in some
        paths and not in others (1 ulp apart between the plain and guarded divisions).
        """
        decoupled_decay(self, variable, ops.cast(learning_rate, variable.dtype))
        super().update_step(gradient, variable, learning_rate)


def decoupled_decay(opt, variable, lr):
    """``W *= 1 - ελ`` with ``opt``'s ``decoupled_weight_decay`` λ (a Python number or a
    variable, cast to the weight's dtype); ``lr`` already in that dtype. Shared by
    ``AdamW`` and ``Muon``."""
    decay = as_dtype(opt.decoupled_weight_decay, variable.dtype)
    opt.assign(variable, ops.multiply(variable, 1.0 - lr * decay))
