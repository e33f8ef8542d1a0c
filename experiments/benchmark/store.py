"""The benchmark's MLflow side: one parent run per benchmark id, one child run per trial.

The parent (``run_type=benchmark``, run name ``benchmark-<id>``) holds the settings, and at
the end the scores, the leaderboard and the plots; each trial is a child run (tag
``mlflow.parentRunId``, so the UI groups them under the parent) with the trial's
validation curve, its result and its hyperparameters. A rerun with the same id reuses
the parent and skips every trial whose child run is FINISHED (``finished``): a killed
benchmark resumes with no trial trained twice and none lost, since a trial's run is
written, in three calls, only once the trial is done.
"""

from __future__ import annotations

import contextlib
import json
import math
import time

import numpy as np

EXPERIMENT = "benchmark"


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

    def open_parent(self, params: dict) -> None:
        """Find this id's parent run (a resumed benchmark) or create it; mark it RUNNING."""
        if not self.enabled:
            return
        from mlflow.entities import Param

        from experiments.core import tracking

        client = self._client()
        found = self._search(client, f"tags.benchmark_id = '{self.benchmark_id}' and "
                                     "tags.run_type = 'benchmark'")
        if found:
            self.parent_id = found[0].info.run_id
            tracking.retrying(client.update_run, self.parent_id, "RUNNING")
            return
        run = tracking.retrying(client.create_run, self._experiment_id(client),
                                tags={"benchmark_id": self.benchmark_id,
                                      "run_type": "benchmark"},
                                run_name=f"benchmark-{self.benchmark_id}")
        self.parent_id = run.info.run_id
        tracking.retrying(client.log_batch, self.parent_id,
                          params=[Param(k, str(v)[:500]) for k, v in params.items()])

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
        """trial key -> row, for every FINISHED trial run of this benchmark id."""
        if not self.enabled:
            return {}
        client = self._client()
        if client.get_experiment_by_name(self.experiment) is None:
            return {}
        out = {}
        for run in self._search(client, f"tags.benchmark_id = '{self.benchmark_id}' and "
                                        "tags.run_type = 'benchmark_trial' and "
                                        "attributes.status = 'FINISHED'"):
            result = run.data.tags.get("result")
            if result:
                out[run.data.tags["trial_key"]] = json.loads(result)
        return out

    def log(self, spec, row: dict) -> None:
        """One FINISHED child run for a finished trial, in three calls."""
        if not self.enabled:
            return
        from mlflow.entities import Metric, Param

        from experiments.core import tracking

        client = self._client()
        end_ms = int(time.time() * 1000)
        start_ms = end_ms - int((row["seconds"] + (row.get("eval_seconds") or 0)) * 1000)
        tags = {"benchmark_id": self.benchmark_id, "run_type": "benchmark_trial",
                "trial_key": spec.key(), "workload": spec.workload.name,
                "optimizer": spec.optimizer.name, "optimizer_rule": spec.optimizer.rule.name,
                "implementation": spec.optimizer.implementation, "ruleset": spec.ruleset,
                "study": str(spec.study), "trial": str(spec.trial), "seed": str(spec.seed),
                "result": json.dumps(row, default=json_default)}
        if self.parent_id:
            tags["mlflow.parentRunId"] = self.parent_id
        run = tracking.retrying(client.create_run, self._experiment_id(client),
                                start_time=start_ms, tags=tags,
                                run_name=f"{spec.optimizer.name}-{spec.workload.name}-"
                                         f"{spec.ruleset}-s{spec.study}t{spec.trial}")
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
        tracking.retrying(client.log_batch, run.info.run_id, metrics=metrics[:1000],
                          params=params)
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
        for i in range(0, len(batch), 1000):
            tracking.retrying(client.log_batch, self.parent_id, metrics=batch[i:i + 1000])
        for f in files:
            client.log_artifact(self.parent_id, str(f))
        for f in plots:
            client.log_artifact(self.parent_id, str(f), "plots")
        tracking.retrying(client.set_terminated, self.parent_id, "FINISHED")
