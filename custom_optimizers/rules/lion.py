"""Lion (Chen et al. 2023): the sign of an interpolated momentum."""

import numpy as np

from custom_optimizers.rules._reference import Reference
from custom_optimizers.rules._rule import KerasTwin, Rule, decay


class Lion(Reference):
    state_names = ("m",)

    def __init__(self, learning_rate, beta_1, beta_2, **kw):
        super().__init__(learning_rate, **kw)
        self.b1, self.b2 = beta_1, beta_2

    def _update(self, i, w, g):
        m = self.state["m"][i]
        u = np.sign(self.b1 * m + (1 - self.b1) * g)
        self.state["m"][i] = self.b2 * m + (1 - self.b2) * g
        return w - self.lr * u


def _keras_refusal(hp):
    if float(hp["beta_1"]) == 0.0:
        return ("optimizer.beta_1=0.0 has no Keras counterpart: keras.optimizers.Lion refuses "
                "it (sign descent); use optimizer=lion (the custom Lion)")
    return None


RULE = Rule(
    name="lion",
    title="Lion",
    order=80,
    reference=Lion,
    learning_rate=3e-4,
    hyperparameters=(
        decay("beta_1", 0.9, "β1, the weight of the momentum in the update's sign"),
        decay("beta_2", 0.99, "β2, the decay of the momentum"),
    ),
    adaptive=False,
    keras=KerasTwin(
        "Lion", exact=True,
        arguments=lambda hp: {"learning_rate": float(hp["learning_rate"]),
                              "beta_1": float(hp["beta_1"]), "beta_2": float(hp["beta_2"])},
        refusal=_keras_refusal,
        note="keras.optimizers.Lion(η, β1, β2): the same rule; Keras refuses β1 = 0",
    ),
)
