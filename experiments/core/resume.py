"""Checkpoints, the lock of a run being trained, and finding the run a ``trainer.resume``
continues.

A run's checkpoints live under ``<checkpoint root>/<run id>/`` (beside a local SQLite
store, ``<store folder>/checkpoints``; for other stores, ``mlruns/checkpoints`` in the
project). Each checkpoint is one folder, ``step-<step>-<unique>/``, holding the compiled
model with its optimizer state (``model.keras``) and the trainer's ``TrainingState``
(``progress.json``, with the optimizer's ``iterations`` at the time). It is written
completely and fsync'd before ``current`` (a symbolic link) is swapped to it by one
rename; the previous checkpoint is kept until the next one is complete. So a kill at any
moment leaves ``current`` on a whole, consistent pair. On load, the model's
``optimizer.iterations`` is checked against the recorded one, and a damaged checkpoint
(a truncated file, a mismatched pair) falls back to the previous copy, or is refused in
one line. Checkpoints of the first layout (``model.keras`` and ``progress.json`` directly
in the run's folder) are still read.

``RunLock`` holds an exclusive ``flock`` on ``<run folder>/lock`` for the life of a run,
so a second process resuming a run still being trained is refused, naming the process;
the kernel drops the lock with its holder, so a run whose process was SIGKILLed can be
resumed at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from experiments.core import tracking
from experiments.core.checks import Refusal

RESUMABLE = ("KILLED", "FAILED", "RUNNING")
FINGERPRINT_KEY = "config_hash"  # in progress.json: which config the checkpoint belongs to
ITERATIONS_KEY = "optimizer_iterations"  # in progress.json: the saved optimizer's step count
DIGEST_KEY = "model_sha256"  # in progress.json: the SHA-256 of model.keras
AUTO = ("true", "auto", "latest")
CURRENT = "current"  # the link to the newest complete checkpoint of a run
LOCK = "lock"  # the file a training holds its flock on (its pid@host inside)
_PREFIX = "step-"


class ResumeError(Refusal, ValueError):
    """There is no run to resume, it does not match the config, another process is
    training it, or its checkpoint is damaged."""

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


# --------------------------------------------------------------------------- the lock
class RunLock:
    """``with RunLock(folder, run_id):`` holds an exclusive ``flock`` on ``folder/lock``
    (the run's checkpoint folder, created if needed) until the block is left or the
    process dies. Entering refuses (``ResumeError``, one line naming the holder's
    ``pid@host``) when another process holds it."""

    def __init__(self, folder: Path, run_id: str):
        self.folder, self.run_id = Path(folder), run_id
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        import fcntl
        import socket

        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ResumeError(
                f"trainer.resume={self.run_id}: the run is still being trained by process "
                f"{holder} (it holds {self.folder / LOCK}); wait for it to end, or stop it "
                "and resume again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


# --------------------------------------------------------------------------- checkpoints
def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _iterations(model) -> int | None:
    iterations = getattr(getattr(model, "optimizer", None), "iterations", None)
    return None if iterations is None else int(iterations.numpy())


def save_checkpoint(folder: Path, model, progress: dict) -> Path:
    """Write a new checkpoint of ``model`` and ``progress`` under the run's ``folder`` and
    make it ``current`` by one rename, once it is whole on disk; keep the previous one,
    remove older ones. Returns the new checkpoint's folder."""
    folder.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(dir=folder, prefix=f"{_PREFIX}{int(progress.get('step', 0))}-"))
    try:
        model.save(new / "model.keras")
        (new / "progress.json").write_text(json.dumps(
            {**progress, ITERATIONS_KEY: _iterations(model),
             DIGEST_KEY: _sha256(new / "model.keras")}))
        for path in (new / "model.keras", new / "progress.json", new):
            _fsync(path)
        link = folder / f".{CURRENT}.{os.getpid()}"
        link.unlink(missing_ok=True)
        os.symlink(new.name, link)
        previous = _current(folder)
        os.replace(link, folder / CURRENT)  # the swap: one rename
        _fsync(folder)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    for old in folder.glob(f"{_PREFIX}*"):
        if old.name not in (new.name, previous):
            shutil.rmtree(old, ignore_errors=True)
    for legacy in ("model.keras", "progress.json"):  # the first layout, now superseded
        (folder / legacy).unlink(missing_ok=True)
    return new


def _current(folder: Path) -> str | None:
    try:
        return os.readlink(folder / CURRENT)
    except OSError:
        return None


def _candidates(folder: Path) -> list[Path]:
    """The run's checkpoints, newest first: ``current``, then the others (newest step
    first), then a checkpoint of the first layout."""
    current = _current(folder)
    others = sorted((p for p in folder.glob(f"{_PREFIX}*") if p.name != current),
                    key=lambda p: _step_of(p.name), reverse=True)
    found = ([folder / current] if current else []) + others + [folder]
    return [p for p in found if (p / "model.keras").is_file() and (p / "progress.json").is_file()]


def _step_of(name: str) -> int:
    try:
        return int(name[len(_PREFIX):].split("-")[0])
    except ValueError:
        return -1


def _load_one(path: Path):
    import zipfile

    import keras

    import custom_optimizers

    custom_optimizers.load_all()  # registers every rule's class with Keras's serialization

    try:
        progress = json.loads((path / "progress.json").read_text())
    except ValueError:
        raise ValueError("progress.json is truncated or damaged") from None
    file = path / "model.keras"
    digest = progress.get(DIGEST_KEY)
    if (_sha256(file) != digest) if digest else not zipfile.is_zipfile(file):
        raise ValueError("model.keras is truncated or damaged"
                         + (" (its SHA-256 is not the one saved)" if digest else ""))
    model = keras.models.load_model(file)
    saved, loaded = progress.get(ITERATIONS_KEY), _iterations(model)
    if saved is not None and loaded != saved:
        raise ValueError(f"the model's optimizer is at iteration {loaded}, its progress "
                         f"was saved at {saved}")
    return model, progress


def load_checkpoint(folder: Path, out=sys.stderr):
    """(model with its compiled optimizer and state, progress dict) of the newest whole
    checkpoint under ``folder``; a damaged newer one is skipped with a note on ``out``.
    ``ResumeError`` (one line) when none is whole."""
    problems = []
    for path in _candidates(folder):
        try:
            model, progress = _load_one(path)
        except Exception as err:  # a truncated zip, bad JSON, a mismatched pair, ...
            first = next(iter(str(err).strip().splitlines()), type(err).__name__)
            problems.append(f"{path.name}: {first}")
            continue
        if problems:
            print(f"Note: skipped the damaged checkpoint(s) {'; '.join(problems)}; resuming "
                  f"from {path.name} (step {progress.get('step')}).", file=out)
        return model, progress
    raise ResumeError(f"the checkpoint of run {folder.name} in {folder} cannot be read "
                      f"({'; '.join(problems) or 'no checkpoint'}): the run cannot be "
                      "resumed; start it again without trainer.resume")


def has_checkpoint(folder: Path) -> bool:
    return bool(_candidates(folder))


def remove_checkpoints(folder: Path) -> None:
    """Remove a run's checkpoints once it has FINISHED (nothing to resume any more)."""
    shutil.rmtree(folder, ignore_errors=True)


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
    root = checkpoint_root(uri)
    for progress in [*root.glob(f"*/{_PREFIX}*/progress.json"), *root.glob("*/progress.json")]:
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
