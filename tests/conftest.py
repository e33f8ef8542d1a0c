"""Shared fixtures. Nothing here is autouse: a fixture only acts where a test asks for it."""

from __future__ import annotations

import dataclasses

import pytest

import custom_optimizers
from custom_optimizers import reference, rules
from experiments.core import registry


@dataclasses.dataclass(frozen=True)
class OptimizerCase:
    """One lecture optimizer with hyperparameters under which every term of its rule matters.

    Learning rates are not powers of two and epsilons are large enough (1e-3) that
    putting δ inside instead of outside the root, or dropping it, changes the result
    far beyond the tolerances used.
    """

    name: str
    cls: type
    kwargs: dict

    def make(self, **overrides):
        """The Keras optimizer, with ``overrides`` replacing or adding arguments."""
        return self.cls(**{**self.kwargs, **overrides})

    def reference(self, **overrides):
        """The NumPy reference of the same rule with the same arguments."""
        return reference.BY_NAME[self.name](**{**self.kwargs, **overrides})


OPTIMIZER_CASES = tuple(
    OptimizerCase(rule.name, rule.load_class(), dict(registry.lab(rule.name).test_arguments))
    for rule in rules.all_rules()
)


@pytest.fixture(params=OPTIMIZER_CASES, ids=lambda case: case.name)
def optimizer_case(request) -> OptimizerCase:
    """Each rule of the registry in turn (parametrizes the test that uses it)."""
    return request.param


@pytest.fixture(
    params=[
        c for c in OPTIMIZER_CASES
        if issubclass(c.cls, custom_optimizers.AdaptiveLectureOptimizer)
    ],
    ids=lambda case: case.name,
)
def adaptive_optimizer_case(request) -> OptimizerCase:
    """The adaptive rules (AdaGrad, RMSProp, Adam, ...): with ``effective_learning_rates()``."""
    return request.param


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory) -> str:
    """One SQLite MLflow store for the tests that only need somewhere to log (creating a
    store's tables costs seconds); each test reads back only the runs it made."""
    return f"sqlite:///{tmp_path_factory.mktemp('shared-mlruns') / 'mlflow.db'}"
