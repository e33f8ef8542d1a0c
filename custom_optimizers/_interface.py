"""The interface of ``custom_optimizers.capabilities`` (see there): a plain optimizer's
answers, and ours, read from the class's declarations."""

from __future__ import annotations

import numbers
from typing import Any, Sequence

__all__ = ["Capabilities", "LectureCapabilities", "Reset", "unwrap"]


def unwrap(optimizer):
    """The optimizer inside a mixed-precision ``LossScaleOptimizer``, else itself."""
    import keras

    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Reset:
    """The optimizer's state as ``build`` left it: ``restore(weights)`` puts every variable
    back (a slot that starts as a copy of the weights takes the new ``weights``; every other
    variable, the step counter among them, its value right after ``build``). The learning
    rate and the variables of ``hold_in_variables`` are the caller's and stay."""

    def __init__(self, plan):
        self._plan = plan  # [(variable, index of the weight it copies or None, value)]

    def restore(self, weights: Sequence) -> None:
        for variable, source, value in self._plan:
            variable.assign(weights[source] if source is not None else value)


class Capabilities:
    """A plain Keras optimizer's answers; ``of`` picks the subclass an optimizer declares."""

    #: Where the model is evaluated: "weights" (the weights it trains) or the name of the
    #: optimizer's own point ("x": Schedule-Free's average).
    evaluation_point_name = "weights"

    def __init__(self, optimizer):
        self.optimizer = optimizer

    # -- evaluation, parameter groups, rates ---------------------------------------------
    @property
    def has_evaluation_point(self) -> bool:
        return self.evaluation_point_name != "weights"

    def evaluation_point(self, variables) -> list:
        """The values the model is evaluated at, one tensor per variable (its own value
        where the optimizer has no point of its own)."""
        from keras import ops

        return [ops.copy(v) for v in variables]

    def parameter_groups(self) -> dict[str, list[str]] | None:
        """``{group: [variable paths]}`` for an optimizer that updates groups differently."""
        return None

    def effective_learning_rates(self) -> list | None:
        """Per-weight ``lr / (δ + sqrt(r))`` tensors of an adaptive rule, else None."""
        return None

    def current_learning_rate(self):
        """η at the current step, as a tensor (a schedule evaluated at the step)."""
        return self.optimizer._get_current_learning_rate()

    # -- tuning --------------------------------------------------------------------------
    def hyperparameter_names(self) -> tuple[str, ...]:
        """The attributes that hold the optimizer's numeric hyperparameters (not η)."""
        return ()

    @property
    def tunable(self) -> frozenset:
        """The hyperparameters that may be held in variables (``hold_in_variables``)."""
        return frozenset()

    def hyperparameters(self) -> dict[str, Any]:
        """``{name: value}`` of ``hyperparameter_names`` (a variable once held in one)."""
        return {name: getattr(self.optimizer, name) for name in self.hyperparameter_names()}

    def hold_in_variables(self, names, dtype: str) -> dict:
        """Replace each hyperparameter of ``names`` (all ``tunable``) by a ``keras.Variable``
        of ``dtype`` holding its value; returns them by name. The optimizer's step must be
        traced afterwards; assigning a variable then changes the hyperparameter."""
        import keras

        refused = set(names) - self.tunable
        if refused:
            raise ValueError(f"{', '.join(sorted(refused))} of {type(self.optimizer).__name__} "
                             f"cannot be held in variables: tunable are "
                             f"{', '.join(sorted(self.tunable)) or 'none'}")
        held = {}
        for name in sorted(names):
            held[name] = keras.Variable(float(getattr(self.optimizer, name)), dtype=dtype,
                                        trainable=False, name=f"hp_{name}")
            # past Keras's attribute tracking: the optimizer's own variables stay its state
            object.__setattr__(self.optimizer, name, held[name])
        return held

    @property
    def learning_rate(self) -> float:
        """η as a number (a constant learning rate)."""
        return float(self.optimizer.learning_rate)

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.optimizer.learning_rate = value

    # -- state ---------------------------------------------------------------------------
    def weight_slots(self) -> list[list]:
        """The slot lists (each aligned with the built variables) that start as copies of
        the weights."""
        return []

    def initial_state(self) -> Reset:
        """A ``Reset`` to the state this (built) optimizer is in now, as ``build`` left it."""
        opt = self.optimizer
        copies = {}
        for slots in self.weight_slots():
            for index, slot in enumerate(slots):
                if slot is not None:
                    copies[id(slot)] = index
        learning_rate = getattr(opt, "_learning_rate", None)
        plan = [(v, copies.get(id(v)), None if id(v) in copies else v.numpy())
                for v in opt.variables if v is not learning_rate]
        return Reset(plan)


class LectureCapabilities(Capabilities):
    """Ours: everything read from the class's declarations (see ``LectureOptimizer``)."""

    @property
    def evaluation_point_name(self):
        return self.optimizer.evaluates_at

    def evaluation_point(self, variables):
        if not self.has_evaluation_point:
            return super().evaluation_point(variables)
        return self.optimizer.evaluation_point(variables)

    def parameter_groups(self):
        return self.optimizer.parameter_groups()

    def effective_learning_rates(self):
        from custom_optimizers._base import AdaptiveLectureOptimizer

        if isinstance(self.optimizer, AdaptiveLectureOptimizer):
            return self.optimizer.effective_learning_rates()
        return None

    def hyperparameter_names(self):
        rule = self.optimizer.rule
        if rule is None:
            return ()
        return tuple(hp.name for hp in rule.hyperparameters if _is_number(hp.default))

    @property
    def tunable(self):
        return frozenset(self.hyperparameter_names()) - set(self.optimizer.static_hyperparameters)

    def weight_slots(self):
        return [getattr(self.optimizer, name) for name in self.optimizer.weight_slots]
