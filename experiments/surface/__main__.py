"""``python -m experiments.surface``: loss surfaces of trained networks, tracked in MLflow.

    python -m experiments.surface                                   # sgd, momentum, adam
    python -m experiments.surface optimizers=[sgd,adam] grid_points=51 trainer.epochs=20
    python -m experiments.surface runs=[<run id>,<run id>]          # runs trained with
                                                  # trainer.weights_every_n_steps > 0

Trains the optimizers from one shared initialisation (or reads the runs), then draws the
loss along straight lines, a filter-normalised 2-D contour around a solution and the paths
on their shared PCA plane (``experiments.surface``). The config (``conf/surface.yaml``)
is checked before TensorFlow is imported.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from experiments.core.cli import check_command_line, refusing
from experiments.surface import register_schemas, validate

register_schemas()


@hydra.main(version_base="1.3", config_path="../../conf", config_name="surface")
def main(cfg: DictConfig) -> None:
    with refusing():
        train = validate(cfg)
        from experiments.surface import run

        run(cfg, train=train)


if __name__ == "__main__":
    check_command_line("surface", validate)
    main()
