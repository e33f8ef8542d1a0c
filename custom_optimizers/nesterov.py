"""Nesterov momentum in the lecture's EMA form, rewritten to need only g at W."""

from custom_optimizers.momentum import Momentum
from custom_optimizers.rules.nesterov import RULE


class Nesterov(Momentum, rule=RULE):
    r"""Nesterov momentum: ``v <- a*v + (1-a)*g; W <- W - lr*(a*v + (1-a)*g)``.

    Formula card (lecture: "a modification of momentum called Nesterov momentum")::

        v(t)   = α v(t-1) + (1 - α) g(t)                 v(0) = 0
        W(t+1) = W(t) - η (α v(t) + (1 - α) g(t))

    The look-ahead gradient ``g(W - η α v)`` is rewritten, as in Keras and PyTorch, so
    that the step needs only the gradient at the current weights: the step takes the
    *new* average one more momentum step ahead. Everything but that step is
    ``Momentum``'s (the same state, hyperparameters and defaults), so this class is
    ``Momentum`` with ``nesterov = True``, as Keras's is ``SGD(nesterov=True)``.

    * η → ``learning_rate`` (default 0.1, as ``Momentum``), α → ``momentum`` in [0, 1)
      (default 0.9).
    * ``Nesterov(η, α) == keras.optimizers.SGD(η*(1-α), α, nesterov=True)`` for a
      constant learning rate.
    """

    nesterov = True

