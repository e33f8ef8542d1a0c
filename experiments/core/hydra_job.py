"""What a Hydra entry point knows about the job it runs in, for the run it tracks; and the
callback that keeps secrets out of the files Hydra writes (``conf/*.yaml``:
``hydra.callbacks.redact``)."""

from __future__ import annotations

import os
from pathlib import Path

from hydra.experimental.callback import Callback


def sweep_tags() -> dict:
    """For a multirun job: the sweep it belongs to, so its runs can be found as a unit."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return {}
    return {"sweep": hc.sweep.dir, "sweep_job": str(hc.job.num)}


def task_overrides() -> list[str]:
    """The command line's overrides of this job (empty outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


class RedactOutputs(Callback):
    """Hydra writes a job's composed config, its own config and the overrides
    (``<output dir>/.hydra/{config,hydra,overrides}.yaml``) and, for a sweep,
    ``<sweep dir>/multirun.yaml``, as given: a password in ``tracking.uri`` or a token in
    a tag would stay on disk. Before the job runs, they are rewritten with
    ``experiments.core.tracking.redact_config`` (secret keys, URL credentials)."""

    def on_job_start(self, config, **kwargs) -> None:
        redact_outputs(config)


def redact_outputs(config) -> list[Path]:
    """Rewrite, redacted, the files Hydra wrote for the job of ``config`` (its whole config,
    ``hydra`` node included); returns those that held a secret."""
    from hydra.types import RunMode

    hc = config.hydra
    files = []
    if hc.get("output_subdir") is not None:
        folder = Path(hc.runtime.output_dir) / hc.output_subdir
        files += [folder / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
    if hc.get("mode") == RunMode.MULTIRUN:
        files.append(Path(hc.sweep.dir) / "multirun.yaml")
    return [path for path in files if path.is_file() and _redact_file(path)]


def _redact_file(path: Path) -> bool:
    from omegaconf import OmegaConf

    from experiments.core.tracking import redact_config

    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    safe = redact_config(raw)
    if safe == raw:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(safe)))
    os.replace(tmp, path)  # parallel jobs of a sweep rewrite multirun.yaml alike
    return True
