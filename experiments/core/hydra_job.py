"""What a Hydra entry point knows about the job it runs in, for the run it tracks."""

from __future__ import annotations


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
