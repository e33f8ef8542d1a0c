"""NAdam (Dozat 2016): Adam with Nesterov momentum and a warming-up momentum schedule."""

import numpy as np

from custom_optimizers.rules._rule import Hyperparameter, KerasTwin, Rule
from custom_optimizers.rules.adam import (BETA_1, BETA_2, EPSILON, Adam,
                                          adam_keras_arguments)


class NAdam(Adam):
    """Written from Dozat's algorithm (and ``torch.optim.NAdam``): μ(t), the running
    product of the μ's, the look-ahead first moment, δ outside the corrected root. Adam's
    moments and (always bias-corrected) effective learning rates."""

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, momentum_decay=0.004, **kw):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kw)
        self.psi = momentum_decay
        self.product = 1.0  # Π_{i<=t} μ(i), advanced once per step
        self.advanced_to = 0

    def mu(self, t):
        return self.b1 * (1.0 - 0.5 * 0.96 ** (self.psi * t))

    def _update(self, i, w, g):
        if self.advanced_to < self.t:
            self.product *= self.mu(self.t)
            self.advanced_to = self.t
        mu, mu_next = self.mu(self.t), self.mu(self.t + 1)
        v, r = self._moments(i, g)
        v_hat = (mu_next * v / (1 - self.product * mu_next)
                 + (1 - mu) * g / (1 - self.product))
        r_hat = r / (1 - self.b2 ** self.t)
        return w - self.lr / (self.delta + np.sqrt(r_hat)) * v_hat


def _keras_effective_learning_rates(optimizer):
    """keras.optimizers.Nadam's rate, the factor applied to its look-ahead first moment:
    ``lr / (sqrt(v/(1-b2^t)) + eps)``, as here."""
    from keras import ops

    lr = optimizer._get_current_learning_rate()
    out = []
    for v in optimizer._velocities:
        t = ops.maximum(ops.cast(optimizer.iterations, v.dtype), 1.0)
        c2 = 1.0 - ops.power(ops.convert_to_tensor(optimizer.beta_2, v.dtype), t)
        out.append(ops.cast(lr, v.dtype) / (ops.sqrt(v / c2) + optimizer.epsilon))
    return out


RULE = Rule(
    name="nadam",
    title="NAdam",
    order=70,
    reference=NAdam,
    learning_rate=0.001,
    hyperparameters=(
        BETA_1, BETA_2, EPSILON,
        Hyperparameter("momentum_decay", 0.004, 0.0, None, False, False,
                       "ψ: μ(t) = ρ1 (1 - 0.5·0.96^(ψ t)); 0.004 as Dozat and PyTorch"),
    ),
    adaptive=True,
    keras=KerasTwin(
        "Nadam", exact=True,
        arguments=adam_keras_arguments,
        fixed={"momentum_decay": 1.0},
        effective_learning_rates=_keras_effective_learning_rates,
        note="keras.optimizers.Nadam(η, ρ1, ρ2, epsilon=δ) computes 0.96^t, i.e. ψ = 1, with "
             "δ outside the corrected root as here: the same rule for momentum_decay=1",
    ),
)
