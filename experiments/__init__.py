"""Hydra-configured experiments with the lecture's optimizers, tracked in MLflow."""

from experiments.core import console

console.install()
