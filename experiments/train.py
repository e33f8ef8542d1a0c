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

from experiments.config import ConfigError, register_schemas, validate

register_schemas()


def _sweep_tags() -> dict:
    """For a multirun job: the sweep it belongs to, so its runs can be found as a unit."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return {}
    return {"sweep": hc.sweep.dir, "sweep_job": str(hc.job.num)}


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Train; return the final validation loss (the value a sweeper minimises)."""
    try:
        validate(cfg)
    except ConfigError as err:
        print(f"Error in config: {err}", file=sys.stderr)
        sys.exit(2)
    from experiments.pipeline import run

    return run(cfg, overrides=_overrides(), sweep=_sweep_tags())["val_loss"]


if __name__ == "__main__":
    main()
