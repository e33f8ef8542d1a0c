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

import sys

import hydra
from omegaconf import DictConfig

from experiments.config import ConfigError
from experiments.landscapes import LANDSCAPES, register_schemas, validate
from experiments.train import _overrides, _sweep_tags

register_schemas()


def _check_landscape_choice(args: list[str]) -> None:
    """Refuse ``landscape=<unknown>`` with one line before Hydra composes anything."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(
            [a for a in args if "=" in a and not a.startswith("-")])
    except Exception:  # Hydra reports malformed overrides itself
        return
    for override in parsed:
        if override.key_or_group != "landscape" or override.package is not None:
            continue
        values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                  else [override.get_value_element_as_str()])
        for value in values:
            if value not in LANDSCAPES:
                print(f"Error in config: landscape={value!r} is not valid: choose one of "
                      f"{', '.join(LANDSCAPES)}", file=sys.stderr)
                sys.exit(2)


@hydra.main(version_base="1.3", config_path="../conf", config_name="landscape")
def main(cfg: DictConfig) -> None:
    try:
        optimizers = validate(cfg)
    except ConfigError as err:
        print(f"Error in config: {err}", file=sys.stderr)
        sys.exit(2)
    from experiments.landscapes import run

    run(cfg, optimizers=optimizers, overrides=_overrides(), sweep=_sweep_tags())


if __name__ == "__main__":
    _check_landscape_choice(sys.argv[1:])
    main()
