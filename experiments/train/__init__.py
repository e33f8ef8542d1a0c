"""One model trained with one optimizer on a real dataset, tracked in MLflow
(``python -m experiments.train``).

- ``__main__``: the command (Hydra app, refusals, exit codes, ``--help``);
- ``config``: the job's schema (``conf/train.yaml``) and ``validate``, free of TensorFlow;
- ``pipeline``: one job from a validated config (data, model, optimizer, the loop, MLflow);
- ``trainer``: the training loop (compiled steps, gradient norms, divergence, curvature);
- ``records``: what a run records (tags, per-step metrics, checkpoints, artifacts);
- ``runtime``: the process around it (seeds, distribution strategy, stop signals).

Importing the package loads none of TensorFlow, Keras or MLflow.
"""
