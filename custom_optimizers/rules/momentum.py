"""Momentum in the lecture's exponential-moving-average form."""

from custom_optimizers.rules._reference import Reference
from custom_optimizers.rules._rule import KerasTwin, Rule, decay


class Momentum(Reference):
    state_names = ("v",)

    def __init__(self, learning_rate, momentum, **kw):
        super().__init__(learning_rate, **kw)
        self.a = momentum

    def _update(self, i, w, g):
        v = self.state["v"][i] = self.a * self.state["v"][i] + (1 - self.a) * g
        return w - self.lr * v


MOMENTUM = decay("momentum", 0.9, "α, the decay of the gradient average")


def momentum_keras_arguments(hp, nesterov=False):
    """Momentum(η, α) == keras SGD(learning_rate=η(1-α), momentum=α) for a constant η."""
    a = float(hp["momentum"])
    return {"learning_rate": float(hp["learning_rate"]) * (1.0 - a), "momentum": a,
            "nesterov": nesterov}


RULE = Rule(
    name="momentum",
    title="Momentum",
    order=20,
    reference=Momentum,
    learning_rate=0.1,
    hyperparameters=(MOMENTUM,),
    adaptive=False,
    keras=KerasTwin(
        "SGD", exact=True, arguments=momentum_keras_arguments,
        note="keras.optimizers.SGD(learning_rate=η(1-α), momentum=α): exact for a constant "
             "η (Keras's buffer is a sum, m*v - lr*g, not an average)",
    ),
)
