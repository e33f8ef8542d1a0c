"""Checkpoints, and finding the run a ``trainer.resume`` continues.

A checkpoint is the compiled model saved with its optimizer state (``model.keras``) and
the trainer's ``TrainingState`` (``progress.json``), under ``<checkpoint root>/<run id>/``:
beside a local SQLite store, ``<store folder>/checkpoints``; for other stores,
``mlruns/checkpoints`` in the project. Both files are written to a temporary name and
renamed, so a kill while saving leaves the previous checkpoint whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from experiments.core import tracking
from experiments.core.checks import Refusal

RESUMABLE = ("KILLED", "FAILED", "RUNNING")
FINGERPRINT_KEY = "config_hash"  # in progress.json: which config the checkpoint belongs to
AUTO = ("true", "auto", "latest")


class ResumeError(Refusal, ValueError):
    """There is no run to resume, or it does not match the config."""

    prefix = "Error in config"


def config_hash(config: Mapping[str, Any]) -> str:
    """A fingerprint of what determines the numbers: everything but tracking, resume and
    the progress display."""
    config = {k: v for k, v in config.items() if k != "tracking"}
    config["trainer"] = {k: v for k, v in config["trainer"].items()
                         if k not in ("resume", "progress")}
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_root(uri: str) -> Path:
    db = tracking.local_store_path(uri)
    return (db.parent if db is not None else tracking.PROJECT_ROOT / "mlruns") / "checkpoints"


def checkpoint_dir(uri: str, run_id: str) -> Path:
    return checkpoint_root(uri) / run_id


def save_checkpoint(folder: Path, model, progress: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp_model = folder / "model.tmp.keras"
    model.save(tmp_model)
    os.replace(tmp_model, folder / "model.keras")
    tmp_json = folder / "progress.tmp.json"
    tmp_json.write_text(json.dumps(progress))
    os.replace(tmp_json, folder / "progress.json")


def load_checkpoint(folder: Path):
    """(model with its compiled optimizer and state, progress dict)."""
    import keras

    import custom_optimizers  # noqa: F401  (registers the lecture's optimizers)

    model = keras.models.load_model(folder / "model.keras")
    return model, json.loads((folder / "progress.json").read_text())


def has_checkpoint(folder: Path) -> bool:
    return (folder / "model.keras").is_file() and (folder / "progress.json").is_file()


def check_resumable(uri: str, resume: str, fingerprint: str) -> None:
    """Raise ``ResumeError`` when there is certainly nothing to resume, from the checkpoint
    folders alone (no MLflow, no TensorFlow): ``resume`` names a run without a checkpoint,
    or (``true``) no checkpoint was saved by a run of this config. ``find_run`` decides
    the rest with the tracking store."""
    if resume.lower() in AUTO:
        resume = resume.lower()
    else:
        if not has_checkpoint(checkpoint_dir(uri, resume)):
            raise ResumeError(f"trainer.resume={resume}: no checkpoint of a run with that id "
                              f"in {checkpoint_root(uri)} (give the id of an interrupted run, "
                              "or true for the newest one of this config)")
        return
    for progress in checkpoint_root(uri).glob("*/progress.json"):
        try:
            saved = json.loads(progress.read_text()).get(FINGERPRINT_KEY)
        except (OSError, ValueError):
            saved = None
        if saved is None or saved == fingerprint:  # a candidate (older checkpoints: maybe)
            return
    raise ResumeError(f"trainer.resume={resume}: no interrupted or crashed run of this "
                      f"config has a checkpoint in {checkpoint_root(uri)}")


def find_run(client, uri: str, experiment_name: str, resume: str, fingerprint: str) -> str:
    """The run id to continue: ``resume`` itself, or for ``true`` the newest interrupted or
    crashed run of this config that has a checkpoint. Raises ``ResumeError``."""
    if resume.lower() not in AUTO:
        try:
            run = client.get_run(resume)
        except Exception:
            raise ResumeError(f"trainer.resume={resume}: no such run in the tracking store") \
                from None
        if run.data.tags.get("config_hash") != fingerprint:
            raise ResumeError(
                f"trainer.resume={resume}: that run was trained with another config; "
                "resume it with the same overrides it was started with")
        if not has_checkpoint(checkpoint_dir(uri, resume)):
            raise ResumeError(f"trainer.resume={resume}: the run has no checkpoint in "
                              f"{checkpoint_dir(uri, resume)}")
        return resume
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.config_hash = '{fingerprint}'",
            order_by=["attributes.start_time DESC"], max_results=50)
        for run in runs:
            if (run.info.status in RESUMABLE
                    and run.data.tags.get("failure_reason") != "diverged"
                    and has_checkpoint(checkpoint_dir(uri, run.info.run_id))):
                return run.info.run_id
    raise ResumeError(f"trainer.resume={resume}: no interrupted or crashed run of this config "
                      f"with a checkpoint in experiment '{experiment_name}'")


def last_logged_step(client, run_id: str, key: str) -> int:
    """The highest step at which ``key`` was logged in the run (0 if never)."""
    history = client.get_metric_history(run_id, key)
    return max((m.step for m in history), default=0)
