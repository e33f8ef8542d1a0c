"""``python -m experiments.benchmark``: which optimizer differences survive fair tuning.

    python -m experiments.benchmark                      # preset=default (30 min, 2 cores)
    python -m experiments.benchmark preset=smoke         # under a minute
    python -m experiments.benchmark preset=twins         # Keras twins trial by trial
    python -m experiments.benchmark mode=calibrate       # set the workloads' targets
    python -m experiments.benchmark preset=full hydra/launcher=slurm -m shard=0/8,...

The command line is checked (``experiments.core.cli``) before TensorFlow loads: a mistake is
refused with one line and exit code 2, and no run is created.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from experiments.benchmark.app import main_entry
from experiments.benchmark.settings import check
from experiments.core.cli import check_command_line


@hydra.main(version_base="1.3", config_path="../../conf", config_name="benchmark")
def main(cfg: DictConfig) -> None:
    main_entry(cfg)


if __name__ == "__main__":
    check_command_line("benchmark", check)
    main()
