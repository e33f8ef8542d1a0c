"""Adam: RMSProp plus momentum, with bias correction of both moving averages."""

import numpy as np

from custom_optimizers.rules._reference import Reference
from custom_optimizers.rules._rule import (Hyperparameter, KerasTwin, Rule, decay,
                                           epsilon)


class Adam(Reference):
    state_names = ("v", "r")

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, bias_correction=True, **kw):
        super().__init__(learning_rate, **kw)
        self.b1, self.b2, self.delta = beta_1, beta_2, epsilon
        self.bias_correction = bias_correction

    def _moments(self, i, g):
        """The moving averages v (first moment) and r (second), updated with ``g``."""
        v = self.state["v"][i] = self.b1 * self.state["v"][i] + (1 - self.b1) * g
        r = self.state["r"][i] = self.b2 * self.state["r"][i] + (1 - self.b2) * g * g
        return v, r

    def _update(self, i, w, g):
        v, r = self._moments(i, g)
        if self.bias_correction:
            v = v / (1 - self.b1 ** self.t)
            r = r / (1 - self.b2 ** self.t)
        return w - self.lr / (self.delta + np.sqrt(r)) * v

    def effective_learning_rates(self):
        c2 = 1 - self.b2 ** self.t if self.bias_correction else 1.0
        return [self.lr / (self.delta + np.sqrt(r / c2)) for r in self.state["r"]]


def keras_effective_learning_rates(optimizer):
    """keras.optimizers.Adam's rate as the factor applied to the corrected first moment,
    ``lr*sqrt(1-b2^t)/(sqrt(v) + eps)``."""
    from keras import ops

    lr = optimizer._get_current_learning_rate()
    out = []
    for v in optimizer._velocities:
        t = ops.maximum(ops.cast(optimizer.iterations, v.dtype), 1.0)
        c2 = ops.sqrt(1.0 - ops.power(ops.convert_to_tensor(optimizer.beta_2, v.dtype), t))
        out.append(ops.cast(lr, v.dtype) * c2 / (ops.sqrt(v) + optimizer.epsilon))
    return out


BETA_1 = decay("beta_1", 0.9, "ρ1, the decay of the first-moment average")
BETA_2 = decay("beta_2", 0.999, "ρ2, the decay of the second-moment average")
EPSILON = epsilon("δ, outside the root of the corrected second moment")


def adam_keras_arguments(hp):
    """η, ρ1, ρ2 and δ under Keras's names (Adam's and Nadam's)."""
    return {"learning_rate": float(hp["learning_rate"]), "beta_1": float(hp["beta_1"]),
            "beta_2": float(hp["beta_2"]), "epsilon": float(hp["epsilon"])}


RULE = Rule(
    name="adam",
    title="Adam",
    order=60,
    reference=Adam,
    learning_rate=0.001,
    hyperparameters=(
        BETA_1, BETA_2, EPSILON,
        Hyperparameter("bias_correction", True, doc="divide the averages by 1 - ρ^t"),
    ),
    adaptive=True,
    keras=KerasTwin(
        "Adam", exact=False,
        arguments=adam_keras_arguments,
        fixed={"bias_correction": True},
        note="keras.optimizers.Adam(η, ρ1, ρ2, epsilon=δ): Keras adds its 'epsilon hat' to the "
             "uncorrected sqrt(r), equal to the lecture's δ only as δ -> 0",
        equal_when={"epsilon": 0.0},
        effective_learning_rates=keras_effective_learning_rates,
    ),
)
