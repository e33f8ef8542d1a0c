"""Plain gradient descent, the lecture's "old gradient descent": ``W <- W - η g``."""

from custom_optimizers.rules._reference import Reference
from custom_optimizers.rules._rule import KerasTwin, Rule


class SGD(Reference):
    def _update(self, i, w, g):
        return w - self.lr * g


RULE = Rule(
    name="sgd",
    title="SGD",
    order=10,
    reference=SGD,
    learning_rate=0.1,
    hyperparameters=(),
    adaptive=False,
    keras=KerasTwin(
        "SGD", exact=True,
        arguments=lambda hp: {"learning_rate": float(hp["learning_rate"])},
        note="keras.optimizers.SGD(learning_rate=η): the same rule",
    ),
)
