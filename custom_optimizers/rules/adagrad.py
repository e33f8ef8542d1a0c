"""AdaGrad: per-weight learning rates from the running sum of squared gradients."""

import numpy as np

from custom_optimizers.rules._reference import Reference
from custom_optimizers.rules._rule import KerasTwin, Rule, epsilon


class AdaGrad(Reference):
    state_names = ("r",)

    def __init__(self, learning_rate, epsilon, **kw):
        super().__init__(learning_rate, **kw)
        self.delta = epsilon

    def _update(self, i, w, g):
        r = self.state["r"][i] = self.state["r"][i] + g * g
        return w - self.lr / (self.delta + np.sqrt(r)) * g

    def effective_learning_rates(self):
        return [self.lr / (self.delta + np.sqrt(r)) for r in self.state["r"]]


def _keras_effective_learning_rates(optimizer):
    """keras.optimizers.Adagrad's rate in its conventions: ``lr / sqrt(acc + eps)``."""
    from keras import ops

    lr = optimizer._get_current_learning_rate()
    return [ops.cast(lr, a.dtype) / ops.sqrt(a + optimizer.epsilon)
            for a in optimizer._accumulators]


RULE = Rule(
    name="adagrad",
    title="AdaGrad",
    order=40,
    reference=AdaGrad,
    learning_rate=0.05,
    hyperparameters=(epsilon(),),
    adaptive=True,
    keras=KerasTwin(
        "Adagrad", exact=False,
        arguments=lambda hp: {"learning_rate": float(hp["learning_rate"]),
                              "initial_accumulator_value": 0.0,
                              "epsilon": float(hp["epsilon"]) ** 2},
        note="keras.optimizers.Adagrad(η, initial_accumulator_value=0, epsilon=δ²): Keras adds "
             "epsilon inside the root, so δ² agrees where r = 0 and where sqrt(r) >> δ",
        equal_when={"epsilon": 0.0},
        effective_learning_rates=_keras_effective_learning_rates,
    ),
)
