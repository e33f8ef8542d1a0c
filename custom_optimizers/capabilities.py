"""What an optimizer offers beyond ``keras.optimizers.Optimizer``, asked through one interface.

>>> caps = capabilities.of(optimizer)     # ours, a Keras built-in twin, or any optimizer
>>> caps.evaluation_point_name            # "x" (Schedule-Free's average) or "weights"
>>> caps.parameter_groups()               # Muon: {"muon": [paths], "adamw": [paths]}

A program that trains, evaluates or tunes an optimizer asks ``of(optimizer)``, never
``hasattr`` or Keras's private attributes: an optimizer *declares* what it offers.

* ``evaluation_point(variables)``: where the model is evaluated, tested and saved, when
  that is not the weights it trains (``has_evaluation_point``, ``evaluation_point_name``).
* ``parameter_groups()``: which variables took which kind of step, for an optimizer that
  splits them (Muon's Newton–Schulz and AdamW paths); None for the others.
* ``effective_learning_rates()``: an adaptive rule's per-weight ``lr / (δ + sqrt(r))``.
* ``current_learning_rate()``: η at the current step (a schedule evaluated).
* ``hyperparameters()``, ``tunable``, ``hold_in_variables``, ``learning_rate``: the numeric
  hyperparameters, which of them may be held in variables (read only by the step's
  tensors, never by Python while it is traced), and holding them there, so that one traced
  step serves many settings.
* ``initial_state()``: a ``Reset`` that returns the optimizer's state to where ``build``
  left it, for new initial weights (a new trial).

Our optimizers declare these in their class (``LectureOptimizer``: its rule's
hyperparameters, ``static_hyperparameters``, ``weight_slots``, ``evaluation_point``,
``parameter_groups``); Keras's built-in twins are described in ``custom_optimizers.twins``,
the one place outside the classes that reads Keras's private attributes.
"""

from __future__ import annotations

from custom_optimizers import twins
from custom_optimizers._interface import Capabilities, LectureCapabilities, Reset, unwrap

__all__ = ["Capabilities", "Reset", "of", "unwrap"]


def of(optimizer) -> Capabilities:
    """What ``optimizer`` (ours, a Keras built-in twin, any Keras optimizer; inside a
    ``LossScaleOptimizer`` or not) offers, through one interface."""
    from custom_optimizers._base import LectureOptimizer

    optimizer = unwrap(optimizer)
    if isinstance(optimizer, LectureOptimizer):
        return LectureCapabilities(optimizer)
    return twins.capabilities(optimizer) or Capabilities(optimizer)
