"""``python -m experiments.landscape``: every optimizer on a 2D test function, tracked in MLflow.

    python -m experiments.landscape                               # Rosenbrock, all optimizers
    python -m experiments.landscape landscape=saddle steps=300 optimizers=[sgd,momentum,adam]
    python -m experiments.landscape landscape=cliff optimizer_overrides.clip_threshold=1
    python -m experiments.landscape -m landscape=saddle,ill_conditioned,rosenbrock,beale,local_minima,cliff

One MLflow run per landscape with a nested run per optimizer and baseline; the contour
plot of the paths, the loss curves and an animated GIF are its artifacts, and a Markdown
summary table is printed. The config (``conf/landscape.yaml``) is checked before
TensorFlow is imported.
"""

from __future__ import annotations


import hydra
from omegaconf import DictConfig

from experiments.core.cli import check_command_line, refusing
from experiments.core.hydra_job import sweep_tags, task_overrides
from experiments.landscape import register_schemas, validate

register_schemas()


@hydra.main(version_base="1.3", config_path="../../conf", config_name="landscape")
def main(cfg: DictConfig) -> None:
    with refusing():
        optimizers = validate(cfg)
        from experiments.landscape import run

        run(cfg, optimizers=optimizers, overrides=task_overrides(), sweep=sweep_tags())


if __name__ == "__main__":
    check_command_line("landscape", validate)
    main()
