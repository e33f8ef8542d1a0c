"""Speed benchmarks of the lecture's optimizers against their Keras built-in counterparts.

``python -m speed.optimizer_step`` times one ``apply_gradients`` step of each custom
optimizer beside the Keras built-in with the same lecture hyperparameters (translated by
``experiments.core.optim.keras_arguments``), with and without XLA, and prints a Markdown table.
"""
