"""The benchmark's MLflow side: one parent run per benchmark id, one child run per trial.

The parent (``run_type=benchmark``, run name ``benchmark-<id>``) holds the settings, and at
the end the scores, the leaderboard and the plots; each trial is a child run (tag
``mlflow.parentRunId``, so the UI groups them under the parent) with the trial's
validation curve, its result and its hyperparameters. A rerun with the same id reuses
the parent and skips every trial whose child run is FINISHED (``finished``): a killed
benchmark resumes with no trial trained twice and none lost.

- A trial's run is written only once the trial is done, in one sequence: created RUNNING
  with its tags, its metrics and parameters in batches within ``log_batch``'s limits
  (nothing dropped), then ended FINISHED. A run a killed writer left RUNNING is not done:
  the trial is trained again, and the run deleted once it is ``STALE_S`` old.
- The curve is the metrics ``<workload metric>`` and ``seconds`` by step. The ``result``
  tag holds the row, with its curve only when the whole fits MLflow's limit for a tag
  (``MAX_TAG``, 8,000 characters; about 1,500 with the default 40 evaluations): a
  longer curve (a small ``eval_every``) is read back from the metrics on resume, two
  calls a trial instead of none.
- One parent per benchmark id under concurrency: beside a SQLite store the search and the
  creation hold a lock; on a server the parent is searched again after its creation, the
  oldest kept and the others deleted.
"""

from __future__ import annotations

import contextlib
import json
import math
import time

import numpy as np

EXPERIMENT = "benchmark"
#: ``log_batch``'s limits: entities (metrics + params + tags) and params + tags per call
MAX_ENTITIES, MAX_PARAMS = 1000, 100
#: MLflow's limit for a tag's value (PostgreSQL enforces it)
MAX_TAG = 8000
#: a trial run left RUNNING this many seconds after its write began is deleted on resume
STALE_S = 120.0
#: what MLflow stores for an infinite metric (it keeps NaN, but clips +-inf)
_FLOAT_MAX = 1.7976931348623157e308


def batches(metrics=(), params=()):
    """(metrics, params) chunks for ``log_batch``: at most ``MAX_PARAMS`` params and
    ``MAX_ENTITIES`` entities a call, every one of them sent."""
    metrics, params = list(metrics), list(params)
    while metrics or params:
        p, params = params[:MAX_PARAMS], params[MAX_PARAMS:]
        room = MAX_ENTITIES - len(p)
        m, metrics = metrics[:room], metrics[room:]
        yield m, p


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(type(value).__name__)


class TrialStore:
    """The benchmark's runs in MLflow; with ``uri`` None nothing is stored."""

    def __init__(self, uri: str | None, benchmark_id: str, experiment: str = EXPERIMENT):
        self.uri, self.benchmark_id, self.experiment = uri, benchmark_id, experiment
        self._exp_id = None
        self.parent_id: str | None = None

    @property
    def enabled(self) -> bool:
        return self.uri is not None

    def _client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def _experiment_id(self, client) -> str:
        if self._exp_id is None:
            from experiments.core import tracking

            self._exp_id = tracking.get_or_create_experiment(client, self.uri, self.experiment)
        return self._exp_id

    def _search(self, client, query: str) -> list:
        out, token = [], None
        while True:
            page = client.search_runs([self._experiment_id(client)], query, max_results=1000,
                                      page_token=token)
            out += list(page)
            token = page.token
            if not token:
                return out

    def _parents(self, client) -> list:
        """This id's parent runs, the oldest (the one kept) first."""
        found = self._search(client, f"tags.benchmark_id = '{self.benchmark_id}' and "
                                     "tags.run_type = 'benchmark'")
        return sorted(found, key=lambda r: (r.info.start_time, r.info.run_id))

    def open_parent(self, params: dict) -> None:
        """Find this id's parent run (a resumed benchmark) or create it; mark it RUNNING.
        One parent per id, whatever runs at the same time (see the module docstring)."""
        if not self.enabled:
            return
        from mlflow.entities import Param

        from experiments.core import tracking

        client = self._client()
        experiment = self._experiment_id(client)  # takes the store's lock itself
        with tracking.store_lock(self.uri):
            found = self._parents(client)
            if not found:
                run = tracking.retrying(client.create_run, experiment,
                                        tags={"benchmark_id": self.benchmark_id,
                                              "run_type": "benchmark"},
                                        run_name=f"benchmark-{self.benchmark_id}")
                for _, chunk in batches(params=[Param(k, str(v)[:500])
                                                for k, v in params.items()]):
                    tracking.retrying(client.log_batch, run.info.run_id, params=chunk)
                found = self._parents(client)  # a server: another job may have made one
                for other in found[1:]:
                    if other.info.run_id == run.info.run_id:
                        tracking.retrying(client.delete_run, run.info.run_id)
        self.parent_id = found[0].info.run_id
        tracking.retrying(client.update_run, self.parent_id, "RUNNING")

    @contextlib.contextmanager
    def ending_parent(self):
        """Around the benchmark's work: an error ends the parent run FAILED, SIGINT or
        SIGTERM (a ``KeyboardInterrupt``) KILLED, and the error propagates; the work ends
        it FINISHED itself (``close_parent``), or leaves it open for the other shards."""
        try:
            yield
        except BaseException as err:
            if self.enabled and self.parent_id:
                from experiments.core import run_status, tracking

                status = (run_status.KILLED if isinstance(err, KeyboardInterrupt)
                          else run_status.FAILED)
                with contextlib.suppress(Exception):
                    tracking.retrying(self._client().set_terminated, self.parent_id, status)
            raise

    def finished(self) -> dict[str, dict]:
        """trial key -> row, for every FINISHED trial run of this benchmark id; a trial
        run left RUNNING (its writer killed) is not done, and is deleted when stale."""
        if not self.enabled:
            return {}
        from experiments.core import tracking

        client = self._client()
        if client.get_experiment_by_name(self.experiment) is None:
            return {}
        out = {}
        now_ms = time.time() * 1000
        for run in self._search(client, f"tags.benchmark_id = '{self.benchmark_id}' and "
                                        "tags.run_type = 'benchmark_trial'"):
            tags = run.data.tags
            if run.info.status != "FINISHED":
                began = float(tags.get("written_at", 0))
                if run.info.status == "RUNNING" and now_ms - began > STALE_S * 1000:
                    tracking.retrying(client.delete_run, run.info.run_id)
                continue
            if not tags.get("result"):
                continue
            row = json.loads(tags["result"])
            if "curve" not in row:
                row["curve"] = self._curve(client, run.info.run_id, row["metric"])
            out[tags["trial_key"]] = row
        return out

    @staticmethod
    def _curve(client, run_id: str, metric: str) -> dict:
        """A trial's curve from its metrics: ``metric`` and ``seconds`` by step."""
        from experiments.core import tracking

        def history(key):
            return {m.step: m.value for m in
                    tracking.retrying(client.get_metric_history, run_id, key)}

        values, seconds = history(metric), history("seconds")
        steps = sorted(values)
        return {"step": steps,
                "value": [math.copysign(math.inf, values[k]) if abs(values[k]) >= _FLOAT_MAX
                          else values[k] for k in steps],
                "seconds": [seconds.get(k, math.nan) for k in steps]}

    def log(self, spec, row: dict) -> None:
        """One FINISHED child run for a finished trial: created, filled, ended in one
        sequence (the module docstring)."""
        if not self.enabled:
            return
        from mlflow.entities import Metric, Param

        from experiments.core import tracking

        client = self._client()
        end_ms = int(time.time() * 1000)
        start_ms = end_ms - int((row["seconds"] + (row.get("eval_seconds") or 0)) * 1000)
        result = json.dumps(row, default=json_default)
        if len(result) > MAX_TAG:  # the curve then lives in the metrics alone
            result = json.dumps({k: v for k, v in row.items() if k != "curve"},
                                default=json_default)
        tags = {"benchmark_id": self.benchmark_id, "run_type": "benchmark_trial",
                "trial_key": spec.key(), "workload": spec.workload.name,
                "optimizer": spec.optimizer.name, "optimizer_rule": spec.optimizer.rule.name,
                "implementation": spec.optimizer.implementation, "ruleset": spec.ruleset,
                "study": str(spec.study), "trial": str(spec.trial), "seed": str(spec.seed),
                "result": result,
                "written_at": str(end_ms)}
        if self.parent_id:
            tags["mlflow.parentRunId"] = self.parent_id
        curve = row["curve"]
        metrics = []
        for step, value, seconds in zip(curve["step"], curve["value"], curve["seconds"]):
            ts = start_ms + int(seconds * 1000)
            metrics += [Metric(spec.workload.metric, value, ts, step),
                        Metric("seconds", seconds, ts, step)]
        final = {"best_value": row["best_value"], "diverged": float(row["diverged"]),
                 "steps_run": row["steps_run"], "steps_to_target": row["steps_to_target"],
                 "seconds_to_target": row["seconds_to_target"],
                 "eval_seconds": row.get("eval_seconds")}
        metrics += [Metric(k, float(v), end_ms, row["steps_run"]) for k, v in final.items()
                    if _finite(v)]
        params = [Param(k, str(v)) for k, v in spec.hp.items()]
        run = tracking.retrying(client.create_run, self._experiment_id(client),
                                start_time=start_ms, tags=tags,
                                run_name=f"{spec.optimizer.name}-{spec.workload.name}-"
                                         f"{spec.ruleset}-s{spec.study}t{spec.trial}")
        for m, p in batches(metrics, params):
            tracking.retrying(client.log_batch, run.info.run_id, metrics=m, params=p)
        tracking.retrying(client.set_terminated, run.info.run_id, "FINISHED", end_ms)

    def close_parent(self, metrics: dict, files: list, plots: list) -> None:
        """The summary into the parent run, which ends FINISHED."""
        if not (self.enabled and self.parent_id):
            return
        from mlflow.entities import Metric

        from experiments.core import tracking

        client = self._client()
        now = int(time.time() * 1000)
        batch = [Metric(k.replace(" ", "_"), float(v), now, 0) for k, v in metrics.items()
                 if _finite(v)]
        for chunk, _ in batches(batch):
            tracking.retrying(client.log_batch, self.parent_id, metrics=chunk)
        for f in files:
            client.log_artifact(self.parent_id, str(f))
        for f in plots:
            client.log_artifact(self.parent_id, str(f), "plots")
        tracking.retrying(client.set_terminated, self.parent_id, "FINISHED")
