"""The gallery's side of the store: find a figure's runs by their tags, make the missing
ones, read their metrics back.

A training run is identified by the digest of the config that determines its numbers
(``config_hash``: ``experiments.core.resume.config_hash``, everything but tracking, resume and
the progress display), which ``experiments.train.pipeline`` tags every run with; the figures'
runs are also tagged with their preset (``challenge=<preset>``).
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.core.cli import CONF


def compose(config_name: str, overrides: list[str]) -> DictConfig:
    """The config ``python -m experiments.<command> <overrides>`` would run with."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides))


def digest(cfg: DictConfig) -> str:
    """The ``config_hash`` tag ``experiments.train.pipeline`` gives a run of ``cfg``."""
    from experiments.core.resume import config_hash

    return config_hash(OmegaConf.to_container(cfg, resolve=True))


def find_run(uri: str, experiment: str, tags: dict[str, str]):
    """The newest FINISHED run of ``experiment`` with every tag of ``tags``, or None."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    query = " and ".join([*(f"tags.{k} = '{v}'" for k, v in tags.items()),
                          "attributes.status = 'FINISHED'"])
    found = client.search_runs([exp.experiment_id], query, max_results=1,
                               order_by=["attributes.start_time DESC"])
    return found[0] if found else None


class Trainings:
    """The training runs of one figure: ``python -m experiments.train <base> <variant>``
    for each variant, tagged ``challenge=<preset>``."""

    def __init__(self, preset: str, variants: dict[str, list[str]]):
        self.preset, self.variants = preset, variants

    @property
    def command(self) -> str:
        """The sweep that makes every variant: one ``key=v1,v2,...`` per key, in the order
        the keys first appear (the variants are the product of those values)."""
        values: dict[str, list[str]] = {}
        for variant in self.variants.values():
            for override in variant:
                key, _, value = override.partition("=")
                if value not in values.setdefault(key, []):
                    values[key].append(value)
        assert math.prod(map(len, values.values())) == len(self.variants), values
        sweep = " ".join(f"{key}={','.join(v)}" for key, v in values.items())
        return f"python -m experiments.train -m +experiment={self.preset} {sweep}"

    def config(self, ctx, label: str) -> DictConfig:
        from experiments.train.config import register_schemas, validate

        register_schemas()

        cfg = compose("train", [f"+experiment={self.preset}", *self.variants[label],
                                f"tracking.uri={ctx.uri}"])
        validate(cfg)
        return cfg

    def _tags(self, cfg) -> dict[str, str]:
        return {"challenge": self.preset, "config_hash": digest(cfg)}

    def stored(self, ctx) -> dict[str, object]:
        """label -> the stored run of that variant (labels without one are left out)."""
        out = {}
        for label in self.variants:
            cfg = self.config(ctx, label)
            run = find_run(ctx.uri, cfg.tracking.experiment_name, self._tags(cfg))
            if run is not None:
                out[label] = run
        return out

    def status(self, ctx) -> str:
        stored = self.stored(ctx)
        missing = [label for label in self.variants if label not in stored]
        if not missing:
            return f"reads {len(stored)} stored runs"
        return (f"{len(stored)} of {len(self.variants)} runs stored; trains "
                f"{', '.join(missing)}")

    def runs(self, ctx) -> dict[str, object]:
        """label -> run, every variant: read back when stored, else trained now."""
        from experiments.train.pipeline import run as train

        stored = self.stored(ctx)
        for i, label in enumerate(self.variants, 1):
            if label in stored:
                ctx.log(f"{label}: stored run {stored[label].info.run_id}")
                continue
            ctx.log(f"{label}: no stored run, training it ({i}/{len(self.variants)})")
            start = time.perf_counter()
            result = train(self.config(ctx, label), out=io.StringIO())
            ctx.log(f"{label}: run {result['run_id']} trained in "
                    f"{time.perf_counter() - start:.0f} s")
        stored = self.stored(ctx)
        assert set(stored) == set(self.variants), "a trained run was not found again"
        return {label: stored[label] for label in self.variants}


def history(uri: str, run_id: str, key: str):
    """(steps, values) of metric ``key`` of run ``run_id``, by step."""
    import numpy as np
    from mlflow.tracking import MlflowClient

    rows = sorted((m.step, m.value) for m in
                  MlflowClient(tracking_uri=uri).get_metric_history(run_id, key))
    steps, values = zip(*rows) if rows else ((), ())
    return np.asarray(steps), np.asarray(values, dtype=float)


def download(uri: str, run_id: str, artifact: str, folder: Path) -> Path:
    """Artifact ``artifact`` of run ``run_id`` copied into ``folder``, without MLflow's
    progress bar (unless ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` is set)."""
    import os

    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
    from mlflow.tracking import MlflowClient

    os.environ.setdefault(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, "false")

    return Path(MlflowClient(tracking_uri=uri).download_artifacts(run_id, artifact,
                                                                   str(folder)))
