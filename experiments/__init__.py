"""Hydra-configured experiments with the lecture's optimizers, tracked in MLflow."""

from experiments import console

console.install()
