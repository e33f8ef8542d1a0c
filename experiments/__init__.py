"""Hydra-configured Keras experiments comparing the lab's optimizers."""
