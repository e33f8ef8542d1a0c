"""Independent NumPy implementations of the lecture's rules, for tests and teaching.

Nothing here imports TensorFlow or Keras: each rule is written straight from the
lecture's slides (see ``docs/formulas.md``), in float64 by default, so the Keras
optimizers can be checked against it. Each reference lives beside its rule's description
(``custom_optimizers/rules/<name>.py``); this module gathers them. Usage::

    opt = reference.Adam(learning_rate=0.1)
    params = [np.zeros(3)]
    params = opt.step(params, grads)   # returns new arrays; state kept in ``opt``
"""

from __future__ import annotations

from custom_optimizers.rules import Reference, all_rules, clip

BY_NAME = {rule.name: rule.reference for rule in all_rules()}
"""Rule name -> its NumPy reference class (``"adam"`` -> ``Adam``)."""

globals().update({cls.__name__: cls for cls in BY_NAME.values()})

__all__ = ["BY_NAME", "Reference", "clip", *(cls.__name__ for cls in BY_NAME.values())]
