"""MLflow tracking: where runs go, and a run logger that buffers step metrics.

One synchronous MLflow call costs several milliseconds here, about two training steps of
a small MLP, so step metrics are buffered and sent with ``log_batch`` (at most 1000 per
call) when the buffer fills and at every epoch end. The logger uses ``MlflowClient``
directly, not the fluent API's global active run, so several runs (nested ones too) can
be open in one process.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
MAX_PARAMS = 100  # ... and of params

_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact(value: str) -> str:
    """``value`` with any ``user:password@`` in a URL replaced by ``***@``."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", value)


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``$MLFLOW_TRACKING_URI``, else the project's
    SQLite store. A relative SQLite or file path is taken against the project root,
    whatever the current directory or Hydra's output folder."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri[len("sqlite:///"):]
        if path and path != ":memory:":
            return f"sqlite:///{PROJECT_ROOT / path}"
    if "://" not in uri:  # a plain folder: MLflow's file store (refused by current MLflow)
        return str((PROJECT_ROOT / uri).resolve())
    return uri


def local_store_path(uri: str) -> Path | None:
    """The SQLite database file behind ``uri``, or None for other stores."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    return None


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: ``<store folder>/artifacts`` for a local
    SQLite store (beside ``mlflow.db``, i.e. under ``mlruns/``); the server's default else."""
    db = local_store_path(uri)
    if db is None:
        return None
    return (db.parent / "artifacts").as_uri()


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{"a.b.c": value}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on ``uri``, relative when run from the root."""
    db = local_store_path(uri)
    if db is not None:
        try:
            rel = db.relative_to(Path.cwd())
            return f"mlflow ui --backend-store-uri sqlite:///{rel.as_posix()}"
        except ValueError:
            return f"mlflow ui --backend-store-uri {uri}"
    return f"open {uri} in a browser"


class RunLogger:
    """One MLflow run: params, tags, buffered metrics, artifacts, a final status."""

    def __init__(self, client, run_id: str, flush_at: int = MAX_BATCH):
        self.client = client
        self.run_id = run_id
        self.flush_at = flush_at
        self._buffer: list = []

    @classmethod
    def start(cls, uri: str, experiment_name: str, run_name: str,
              tags: Mapping[str, str] | None = None, parent_run_id: str | None = None):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            try:
                experiment_id = client.create_experiment(
                    experiment_name, artifact_location=artifact_location(uri))
            except Exception:  # another process created it first
                experiment = client.get_experiment_by_name(experiment_name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
        tags = {k: redact(str(v)) for k, v in (tags or {}).items()}
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(experiment_id, run_name=run_name, tags=tags)
        return cls(client, run.info.run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, redact(str(v))[:6000]) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS):
            self.client.log_batch(self.run_id, params=items[i:i + MAX_PARAMS])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id,
                              tags=[RunTag(k, redact(str(v))) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int,
                    timestamp_ms: int | None = None) -> None:
        """Buffer ``metrics`` at ``step``; sent when the buffer fills or on ``flush``."""
        from mlflow.entities import Metric

        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), ts, int(step)) for k, v in metrics.items())
        if len(self._buffer) >= self.flush_at:
            self.flush()

    def flush(self) -> None:
        while self._buffer:
            chunk, self._buffer = self._buffer[:MAX_BATCH], self._buffer[MAX_BATCH:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def log_artifacts(self, paths: Iterable[str | Path], artifact_path: str | None = None):
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        """Flush what is buffered, then close the run with ``status``."""
        try:
            self.flush()
        finally:
            self.client.set_terminated(self.run_id, status=status)
