"""``python -m experiments.train``: train one model with one optimizer, tracked in MLflow.

    python -m experiments.train                          # the embedded default
    python -m experiments.train optimizer=momentum optimizer.learning_rate=0.05 \
        dataset=mnist1d model=cnn trainer.epochs=20
    python -m experiments.train -m optimizer=adam,keras_adam trainer.seed=0,1,2

The config (``conf/train.yaml`` and its groups) is composed and checked before
TensorFlow is imported, so a typo is refused in about a second with one line.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from experiments.core.cli import (EXIT_FAILED, EXIT_SIGINT, EXIT_SIGTERM, check_command_line,
                                  refusing)
from experiments.core.hydra_job import sweep_tags, task_overrides
from experiments.train.config import register_schemas, validate

register_schemas()


def _fail(message: str, code: int) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Train; return the final validation loss (the value a sweeper minimises).

    A user's mistake (bad value, unreachable store, nothing to resume, dataset not
    downloaded) ends with one line on stderr and exit code 2, before any run is created
    (``experiments.core.cli`` has the table of exit codes).
    A diverged job ends its run FAILED; in a multirun the sweep goes on (the job returns
    inf), alone it exits 1. SIGINT/SIGTERM end the run KILLED with a checkpoint (exit 130
    or 143) and print how to resume.
    """
    with refusing():
        validate(cfg)
        return _train(cfg)


def _train(cfg: DictConfig) -> float:
    # None of these import TensorFlow: a refusal before training stays fast.
    from experiments.train.pipeline import run
    from experiments.train.runtime import Stopped

    sweep = sweep_tags()
    try:
        return run(cfg, overrides=task_overrides(), sweep=sweep)["val_loss"]
    except Stopped as err:
        _fail(stopped_message(err, task_overrides()),
              EXIT_SIGINT if err.signal_name == "SIGINT" else EXIT_SIGTERM)
    except Exception as err:
        trainer = sys.modules.get("experiments.train.trainer")  # loaded once training started
        if trainer is None or not isinstance(err, trainer.Diverged):
            raise
        print(f"Diverged: {err}; the run is marked FAILED with the metrics up to that step.",
              file=sys.stderr)
        if sweep:
            return float("inf")
        sys.exit(EXIT_FAILED)


def stopped_message(err, overrides: list[str]) -> str:
    """What a stopped training prints: where it stopped and the command that continues it,
    with secrets masked (``tracking.redact_override``; the line ends up in job logs)."""
    from experiments.core.tracking import redact_override

    kept = [o for o in overrides if not o.startswith("trainer.resume=")]
    shown = [redact_override(o) for o in kept]
    again = " ".join([*shown, f"trainer.resume={err.run_id}"])
    note = (" (the values shown as *** are secrets: give them again)"
            if shown != kept else "")
    return (f"Stopped by {err.signal_name} at step {err.step}; the run is KILLED with a "
            f"checkpoint. Continue it with: python -m experiments.train {again}{note}")


def _check(cfg: DictConfig) -> None:
    """Everything ``main`` would refuse before training, for ``check_command_line``."""
    from experiments.train.pipeline import check_ready

    validate(cfg)
    check_ready(cfg)


HELP = """\
python -m experiments.train [OVERRIDE ...] [-m]

Train one model with one optimizer on a real dataset, tracked in MLflow. Overrides are
Hydra's: group=option picks a file, key=value sets a value, -m sweeps comma lists.

{groups}
Examples:
  python -m experiments.train optimizer=momentum optimizer.learning_rate=0.05 \\
      dataset=mnist1d model=cnn trainer.epochs=20
  python -m experiments.train -m optimizer=adam,keras_adam trainer.seed=0,1,2
  python -m experiments.train +experiment=vanishing_gradients
  python -m experiments.train ... trainer.resume=true     # continue an interrupted run

More: --cfg job (the composed config), --info, --hydra-help. Runs go to
sqlite:///mlruns/mlflow.db; see them with: mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db
"""


def quick_help() -> str:
    """The app's --help, read from conf/ directly.

    Hydra's own --help composes every option of every group (seconds with this many typed
    configs); this lists the same groups and options in a fraction of that.
    """
    from experiments.core import CONF as conf

    lines = ["Config groups (conf/<group>/<option>.yaml; experiment is added with"
             " +experiment=<option>):"]
    for group in ("optimizer", "dataset", "model", "trainer", "tracking", "experiment",
                  "hparams_search"):
        options = sorted(f.stem for f in (conf / group).glob("*.yaml"))
        if options:
            lines.append(f"  {group + ':':16} {', '.join(options)}")
    return HELP.format(groups="\n".join(lines) + "\n")


if __name__ == "__main__":
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        print(quick_help(), end="")
        sys.exit(0)
    check_command_line("train", _check)
    main()
