"""RMSProp: AdaGrad with an exponentially weighted average of squared gradients."""

import numpy as np

from custom_optimizers.rules._reference import Reference
from custom_optimizers.rules._rule import KerasTwin, Rule, decay, epsilon


class RMSProp(Reference):
    state_names = ("r",)

    def __init__(self, learning_rate, rho, epsilon, **kw):
        super().__init__(learning_rate, **kw)
        self.rho, self.delta = rho, epsilon

    def _update(self, i, w, g):
        r = self.state["r"][i] = self.rho * self.state["r"][i] + (1 - self.rho) * g * g
        return w - self.lr / (self.delta + np.sqrt(r)) * g

    def effective_learning_rates(self):
        return [self.lr / (self.delta + np.sqrt(r)) for r in self.state["r"]]


def _keras_effective_learning_rates(optimizer):
    """keras.optimizers.RMSprop's rate in its conventions: ``lr / sqrt(r + eps)``."""
    from keras import ops

    lr = optimizer._get_current_learning_rate()
    return [ops.cast(lr, v.dtype) / ops.sqrt(v + optimizer.epsilon)
            for v in optimizer._velocities]


RULE = Rule(
    name="rmsprop",
    title="RMSProp",
    order=50,
    reference=RMSProp,
    learning_rate=0.001,
    hyperparameters=(decay("rho", 0.9, "ρ, the decay of the squared-gradient average"),
                     epsilon()),
    adaptive=True,
    keras=KerasTwin(
        "RMSprop", exact=False,
        arguments=lambda hp: {"learning_rate": float(hp["learning_rate"]),
                              "rho": float(hp["rho"]), "epsilon": float(hp["epsilon"]) ** 2},
        note="keras.optimizers.RMSprop(η, rho=ρ, epsilon=δ²): epsilon inside the root in Keras",
        equal_when={"epsilon": 0.0},
        effective_learning_rates=_keras_effective_learning_rates,
    ),
)
