"""What every command shares, free of TensorFlow at import.

The floor, imported by everything and importing nothing of the project above it:
- ``checks``: ``ConfigError`` (the refusal type) and the range and type checks;
- ``registry``: the rule registry (``custom_optimizers.rules``, free of TensorFlow) and the
  lab's settings of each rule (``conf/optimizer/lab/<rule>.yaml``: colour, landscape
  learning rate, search space, test arguments).

Configs and how a command line is refused:
- ``config``: the schemas every command shares (optimizer options, tracking), the
  unknown-key check; ``schedules``: learning-rate schedules; ``optim``: an optimizer and its
  schedule from a config;
- ``cli``: the one way a command refuses a mistake (one line, exit code 2, before
  TensorFlow) and the table of exit codes.

Runs and what a user sees:
- ``tracking``: MLflow runs (store, batching, redaction); ``run_status``: how a run ends;
  ``resume``: checkpoints and config hashes; ``hydra_job``: the job's sweep and overrides;
- ``progress``, ``console`` (quiet library start-up), ``plotting``, ``markdown``.

``PROJECT_ROOT`` and ``CONF`` say where the repository and its ``conf/`` are.
"""

from pathlib import Path

#: The repository (a checkout, or the folder an editable install points at) and its configs:
#: the one place that knows where this file sits in it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF = PROJECT_ROOT / "conf"
