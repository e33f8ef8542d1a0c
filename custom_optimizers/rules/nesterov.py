"""Nesterov momentum in the lecture's EMA form, rewritten to need only g at W."""

from custom_optimizers.rules._rule import KerasTwin, Rule
from custom_optimizers.rules.momentum import MOMENTUM, Momentum, momentum_keras_arguments


class Nesterov(Momentum):
    def _update(self, i, w, g):
        v = self.state["v"][i] = self.a * self.state["v"][i] + (1 - self.a) * g
        return w - self.lr * (self.a * v + (1 - self.a) * g)


RULE = Rule(
    name="nesterov",
    title="Nesterov",
    order=30,
    reference=Nesterov,
    learning_rate=0.1,
    hyperparameters=(MOMENTUM,),
    adaptive=False,
    keras=KerasTwin(
        "SGD", exact=True,
        arguments=lambda hp: momentum_keras_arguments(hp, nesterov=True),
        note="keras.optimizers.SGD(η(1-α), α, nesterov=True): exact for a constant η",
    ),
)
