"""MLflow tracking: where runs go, and a run logger that buffers step metrics.

Step metrics are buffered and handed to a background thread every few seconds
(``FLUSH_EVERY_S``) and when the run waits or ends, so the store gets few, large writes that
overlap the training. MLflow's ``log_batch`` costs about 100 µs of CPU per metric on its
SQLite store (SQLAlchemy's ORM builds and flushes one object per row) plus a commit per
call: 15 metrics per step are 1.5 ms, twice a training step of the default MLP. On a SQL
store the rows are therefore inserted in bulk into MLflow's own ``metrics`` table in one
transaction that also updates the run's latest metrics with MLflow's own helper; on SQLite
through the driver's ``executemany`` (about 11 µs of CPU a row, 7 of them SQLite's own
insert into the table and its three indexes, against 14 µs through SQLAlchemy's insert).
Any other store, or rows the bulk insert refuses (a duplicate on resume), go through
``log_batch``. The logger uses ``MlflowClient`` directly, not the fluent API's global
active run, so several runs (nested ones too) can be open in one process.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from experiments.core import PROJECT_ROOT
from experiments.core.checks import Refusal
from experiments.core.metric_store import bulk_store_metrics
from experiments.core.secrets import redact, redact_config, redact_override, redact_params

__all__ = ["redact", "redact_config", "redact_override", "redact_params"]  # and the rest

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
MAX_PARAMS = 100  # ... and of params
FLUSH_AT = 20_000  # buffered metric rows handed to the store at the latest ...
FLUSH_EVERY_S = 5.0  # ... or buffered rows at least this often (the UI follows the run)
# The MLflow UI opens an experiment in its GenAI view unless told otherwise: the kind tag
# (which its front end knows of, though MLflow 3.18 did not yet act on it) and, in every
# address we print, the view after the ``#`` route (``ui_url``).
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
UI_VIEW = "workflowType=machine_learning"
UI_HOST = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default

MAX_EXPERIMENT_NAME = 500  # MLflow refuses a longer experiment name (after TF has loaded)


class TrackingUnavailable(Refusal, RuntimeError):
    """The tracking store cannot be reached or written; the message is one line."""


def check_experiment_name(name) -> None:
    """Refuse (``ConfigError``) an experiment name MLflow would refuse: empty, blank or
    longer than ``MAX_EXPERIMENT_NAME`` characters."""
    from experiments.core.checks import ConfigError

    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"tracking.experiment_name={name!r} is not valid: give a non-empty "
                          "name")
    if len(name) > MAX_EXPERIMENT_NAME:
        raise ConfigError(f"tracking.experiment_name='{name[:20]}...' is {len(name)} "
                          f"characters long: MLflow takes at most {MAX_EXPERIMENT_NAME}")


def _retrying(call, *args, attempts: int = 8, **kwargs):
    """``call(*args, **kwargs)``, retried with backoff while SQLite says it is locked."""
    delay = 0.05
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as err:  # MlflowException wraps sqlalchemy's OperationalError
            if "locked" not in str(err).lower() or attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def retrying(call, *args, **kwargs):
    """``call(*args, **kwargs)`` on the tracking store, retried while SQLite is locked."""
    return _retrying(call, *args, **kwargs)


def get_or_create_experiment(client, uri: str, name: str) -> str:
    """The id of experiment ``name``, created (artifacts beside a local store) if new, and
    tagged ``EXPERIMENT_TAGS``."""
    with _StoreLock(uri):
        experiment = _retrying(client.get_experiment_by_name, name)
        if experiment is not None:
            for key, value in EXPERIMENT_TAGS.items():  # one made before the tags existed
                if experiment.tags.get(key) != value:
                    _retrying(client.set_experiment_tag, experiment.experiment_id, key, value)
            return experiment.experiment_id
        return _retrying(client.create_experiment, name,
                         artifact_location=artifact_location(uri), tags=EXPERIMENT_TAGS)


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


class _StoreLock:
    """An exclusive lock beside a SQLite store, so that parallel jobs on a fresh store
    don't race to create its schema (MLflow migrates a new database on first use)."""

    def __init__(self, uri: str):
        db = local_store_path(uri)
        self.path = None if db is None else db.with_name(db.name + ".lock")
        self.handle = None

    def __enter__(self):
        if self.path is not None:
            import fcntl

            self.handle = open(self.path, "a")
            fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.close()


def store_lock(uri: str):
    """An exclusive lock beside a local SQLite store (nothing for a server), around a
    search-then-create that parallel jobs must not both do. Not reentrant: not around
    ``get_or_create_experiment``, which takes it itself."""
    return _StoreLock(uri)


@contextlib.contextmanager
def _short_requests(timeout_s: float):
    """MLflow's HTTP calls inside: one try each, ``timeout_s`` seconds (its defaults: 7
    retries with backoff and 120 s timeouts, minutes before a wrong password is said)."""
    keys = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout_s)))}
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def probe_store(uri: str, timeout_s: float = 5.0) -> None:
    """Make sure ``uri`` can be written before any training: raise ``TrackingUnavailable``.

    A local SQLite store is created (schema included, under a lock) if its folder is
    writable; a server is asked for its ``/health`` with a short timeout instead of
    MLflow's minutes of retries.
    """
    shown = redact(uri)
    db = local_store_path(uri)
    if db is not None:
        folder = db.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TrackingUnavailable(f"cannot create the tracking store folder {folder}: "
                                      f"{err.strerror}") from None
        if not os.access(folder, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            raise TrackingUnavailable(f"the tracking store {shown} is not writable")
    elif uri.startswith(("http://", "https://")):
        import urllib.request

        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(uri)  # /health needs no credentials; urllib takes none in a URL
        health = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        try:
            with urllib.request.urlopen(health.rstrip("/") + "/health", timeout=timeout_s):
                pass
        except Exception as err:
            reason = getattr(err, "reason", err)
            raise TrackingUnavailable(f"the tracking server {shown} is not reachable: "
                                      f"{reason}") from None
    # /health answers without credentials and without the database (MLflow's basic-auth
    # app leaves it open): a real API call, with the user's credentials, short timeouts
    # and no retries, finds wrong credentials and a database that is down up front
    from mlflow.tracking import MlflowClient

    try:
        with _StoreLock(uri), _short_requests(timeout_s):
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrackingUnavailable(f"cannot use the tracking store {shown}: "
                                  f"{redact(first)}") from None


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
            return f"mlflow ui --backend-store-uri {redact(uri)}"
    return f"open {redact(uri)} in a browser"


class _NotTried(Exception):
    """A metric write skipped because one before it failed (it is sent again with it)."""


def ui_url(uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """The MLflow UI's address of a run (or, without ``run_id``, of its experiment's runs
    table), in the "Model training" view: on the tracking server itself when ``uri`` is
    one (http/https, credentials removed), else where ``mlflow ui`` listens by default.
    The view parameter follows the ``#`` route: before it, the UI ignores it."""
    host = UI_HOST
    if uri.startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        parts = urlsplit(uri)
        host = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path.rstrip('/')}"
    route = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    return f"{host}/{route}?{UI_VIEW}"


def see_it(uri: str, experiment_id: str | None = None, run_id: str | None = None,
           experiment_only: bool = False) -> str:
    """The line printed after a run: how to open the UI, and the address of the run (its
    experiment looked up when not given) or, without ``run_id`` or with
    ``experiment_only``, of its experiment's runs table."""
    if experiment_id is None:
        from mlflow.tracking import MlflowClient

        experiment_id = _retrying(MlflowClient(tracking_uri=uri).get_run,
                                  run_id).info.experiment_id
    url = ui_url(uri, experiment_id, None if experiment_only else run_id)
    if uri.startswith(("http://", "https://")):
        return f"See it at {url}"
    command = ui_command(uri) if local_store_path(uri) else \
        f"mlflow ui --backend-store-uri {redact(uri)}"
    return f"See it with: {command}, then open {url}"


class RunLogger:
    """One MLflow run: params, tags, buffered metrics, artifacts, a final status."""

    def __init__(self, client, run_id: str, flush_at: int = FLUSH_AT):
        self.client = client
        self.run_id = run_id
        self.flush_at = flush_at
        self._buffer: list = []
        self._pending: list = []  # (future, rows) handed to the writer, oldest first
        self._failed = False  # a write failed: the writer skips those behind it
        self._writer = None  # one background thread, started on the first flush
        self._last_flush = time.monotonic()

    @classmethod
    def start(cls, uri: str, experiment_name: str, run_name: str,
              tags: Mapping[str, str] | None = None, parent_run_id: str | None = None):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        experiment_id = get_or_create_experiment(client, uri, experiment_name)
        tags = redact_params(tags or {})
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = _retrying(client.create_run, experiment_id, run_name=run_name, tags=tags)
        return cls(client, run.info.run_id)

    @classmethod
    def reopen(cls, uri: str, run_id: str):
        """Continue an existing run (``trainer.resume``): mark it RUNNING again."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        _retrying(client.update_run, run_id, status="RUNNING")
        return cls(client, run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in redact_params(params).items()]
        for i in range(0, len(items), MAX_PARAMS):
            _retrying(self.client.log_batch, self.run_id, params=items[i:i + MAX_PARAMS])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        _retrying(self.client.log_batch, self.run_id,
                  tags=[RunTag(k, v) for k, v in redact_params(tags).items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int,
                    timestamp_ms: int | None = None) -> None:
        """Buffer ``metrics`` at ``step``; stored every few seconds and on ``wait``/``end``."""
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        step = int(step)
        self._buffer.extend((k, float(v), ts, step) for k, v in metrics.items())
        self.flush(force=False)

    def flush(self, force: bool = True) -> None:
        """Hand the buffered metrics to the background writer.

        With ``force=False`` (after every step and epoch) only when ``FLUSH_EVERY_S``
        seconds have passed since the last hand-over or ``flush_at`` rows wait, and the
        writer has stored everything before: the store gets few, large writes (a commit
        costs tens of ms on a busy disk) and the MLflow UI still follows a long run every
        few seconds. Past ``flush_at`` rows with a write still pending, it blocks until
        that write is done (a stalled store stops the training instead of filling the
        memory). ``wait`` (called by ``end`` and before every checkpoint) blocks until
        everything is stored.
        """
        self._settle(block=False)
        if not self._buffer:
            return
        if not force and self._pending:
            if len(self._buffer) < self.flush_at:
                return
            if self._settle(block=True) is not None:  # bounded: wait for the write before
                self.wait()  # a failed one is sent again; a store that stays down raises
                return
        elif not force and (len(self._buffer) < self.flush_at
                            and time.monotonic() - self._last_flush < FLUSH_EVERY_S):
            return
        if self._writer is None:
            from concurrent.futures import ThreadPoolExecutor

            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-metrics")
        chunk, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        self._pending.append((self._writer.submit(self._store_metrics, chunk), chunk))

    def _settle(self, block: bool) -> BaseException | None:
        """Take the finished writes off the queue, in order (all of them with ``block``).
        A write that failed, and every one queued after it (not tried, so that no later
        step is stored before an earlier one), go back to the front of the buffer to be
        sent again: the store never has a gap that resume's ``last_logged_step`` would
        skip. Returns the first failure."""
        error, requeued = None, []
        while self._pending and (block or self._pending[0][0].done()):
            operation, rows = self._pending.pop(0)
            problem = operation.exception()
            if problem is not None:
                requeued += rows
                if error is None and not isinstance(problem, _NotTried):
                    error = problem
        if requeued:
            self._buffer[:0] = requeued
        if not self._pending:
            self._failed = False  # what failed is back in the buffer: try again
        return error

    def _store_metrics(self, rows: list[tuple[str, float, int, int]]) -> None:
        """Store ``(key, value, timestamp, step)`` rows: in bulk where the store allows.
        Runs in the writer thread, one write after the other; after a failure, the
        writes queued behind it are not tried (``_NotTried``) until it is sent again."""
        from mlflow.entities import Metric

        if self._failed:
            raise _NotTried
        try:
            if _retrying(bulk_store_metrics, self.client, self.run_id, rows):
                return
            for i in range(0, len(rows), MAX_BATCH):
                _retrying(self.client.log_batch, self.run_id, metrics=[
                    Metric(k, v, ts, step) for k, v, ts, step in rows[i:i + MAX_BATCH]])
        except BaseException:
            self._failed = True
            raise

    def wait(self, attempts: int = 3) -> None:
        """Flush, then block until every metric sent so far is in the store; a failed
        write is sent again (``attempts`` in all, a second apart), then its error raised
        (the rows stay buffered)."""
        for attempt in range(attempts):
            self.flush()
            error = self._settle(block=True)
            if error is None:
                return
            if attempt < attempts - 1:
                time.sleep(1.0)
        raise error

    def log_datasets(self, datasets: Iterable[tuple[Any, str]]) -> None:
        """Record ``(mlflow.data dataset, context)`` pairs as the run's dataset inputs."""
        log_datasets(self.client, self.run_id, datasets)

    def log_artifacts(self, paths: Iterable[str | Path], artifact_path: str | None = None):
        for path in paths:
            _retrying(self.client.log_artifact, self.run_id, str(path), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        """Flush what is buffered, then close the run with ``status``."""
        try:
            self.wait()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            _retrying(self.client.set_terminated, self.run_id, status=status)


# --------------------------------------------------------------------------- datasets
def log_datasets(client, run_id: str, datasets: Iterable[tuple[Any, str]]) -> None:
    """Record ``(mlflow.data dataset, context)`` pairs (``experiments.data.inputs.dataset_inputs``) as the dataset
    inputs of run ``run_id``, through ``client`` (an ``MlflowClient``)."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = [DatasetInput(dataset._to_mlflow_entity(),
                           tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
              for dataset, context in datasets]
    _retrying(client.log_inputs, run_id, datasets=inputs)
