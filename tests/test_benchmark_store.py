"""The benchmark's MLflow store (issue 29, item 12): a long curve is stored whole (metrics
in batches within log_batch's limits, no tag over MLflow's 8,000 characters) and read back
on resume; one parent run per benchmark id under concurrency; a trial run left RUNNING by
a killed writer is not done, and is cleaned. No TensorFlow: rows are made up here."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from experiments import benchmark
from experiments.benchmark import store as store_module
from experiments.benchmark.store import TrialStore

ROOT = Path(__file__).resolve().parents[1]


def trial(study=0, trial=0, optimizer="adamw"):
    w = benchmark.load_workload("breast_cancer_logreg")
    (spec,) = [s for s in benchmark.plan_trials([w], benchmark.select_optimizers([optimizer]),
                                                "tuned", trials=trial + 1, studies=study + 1,
                                                seed=0, eval_every=1)
               if s.study == study and s.trial == trial]
    return spec


def row(spec, points=1200):
    """A finished trial's row with a curve of ``points`` evaluations (NaN and inf too)."""
    values = [1.0 / (1 + k) + k * 1e-9 for k in range(points)]
    values[points // 2:points // 2 + 2] = [math.nan, math.inf]
    return {"workload": spec.workload.name, "optimizer": spec.optimizer.name,
            "rule": spec.optimizer.rule.name, "implementation": "custom",
            "ruleset": spec.ruleset, "study": spec.study, "trial": spec.trial,
            "seed": spec.seed, "steps_to_target": 120, "seconds_to_target": 1.25,
            "best_value": 0.0125, "final_value": values[-1], "diverged": False,
            "steps_run": points - 1, "budget_steps": points - 1, "eval_every": 1,
            "seconds": 3.5, "eval_seconds": 0.75, "evaluated_at": "weights",
            "path": "variables", "metric": "val_loss", "target": 0.26, **spec.hp,
            "curve": {"step": list(range(points)),
                      "value": [float(f"{v:.6g}") for v in values],
                      "seconds": [round(k * 0.001, 4) for k in range(points)]}}


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    """One store for the module's tests (a new SQLite store takes seconds to migrate);
    each test has its own benchmark id."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    TrialStore(uri, "setup").open_parent({})  # the schema and the experiment, once
    return uri


def children(uri: str, benchmark_id: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("benchmark")
    return client.search_runs([exp.experiment_id], f"tags.benchmark_id = '{benchmark_id}' "
                                                   "and tags.run_type = 'benchmark_trial'")


def same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_batches_respect_log_batch_limits_and_send_everything():
    chunks = list(store_module.batches(range(2500), [f"p{i}" for i in range(150)]))
    assert all(len(p) <= 100 and len(m) + len(p) <= 1000 for m, p in chunks)
    assert [x for m, _ in chunks for x in m] == list(range(2500))
    assert [x for _, p in chunks for x in p] == [f"p{i}" for i in range(150)]


def test_a_long_curve_is_stored_whole_and_read_back_on_resume(uri):
    store = TrialStore(uri, "long")
    store.open_parent({"preset": "test"})
    spec = trial()
    r = row(spec)
    assert len(json.dumps(r)) > 8000  # the old result tag
    store.log(spec, r)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (child,) = children(uri, "long")
    assert child.info.status == "FINISHED"
    assert max(len(v) for v in child.data.tags.values()) < 2000
    assert len(client.get_metric_history(child.info.run_id, "val_loss")) == 1200
    assert len(client.get_metric_history(child.info.run_id, "seconds")) == 1200
    # the final metrics came after 2400 curve points: the old metrics[:1000] dropped them
    assert child.data.metrics["best_value"] == 0.0125
    assert child.data.metrics["steps_to_target"] == 120
    assert child.data.params["learning_rate"] == str(spec.hp["learning_rate"])

    back = TrialStore(uri, "long").finished()
    assert list(back) == [spec.key()] and same(back[spec.key()], r)
    assert math.isnan(back[spec.key()]["curve"]["value"][600])
    assert back[spec.key()]["curve"]["value"][601] == math.inf
    assert TrialStore(uri, "other").finished() == {}


def test_a_short_curve_comes_back_from_the_tag_alone(uri, monkeypatch):
    """The default 40 evaluations: the row fits one tag, and resume reads no metrics."""
    from mlflow.tracking import MlflowClient

    store = TrialStore(uri, "short")
    spec = trial()
    r = row(spec, points=41)
    store.log(spec, r)
    (child,) = children(uri, "short")
    assert same(json.loads(child.data.tags["result"]), r)
    monkeypatch.setattr(MlflowClient, "get_metric_history", None)  # not called
    assert same(store.finished()[spec.key()], r)


def test_a_trial_run_left_running_is_not_done_and_is_cleaned_when_stale(uri, monkeypatch):
    """The writer killed before the run was ended: the trial counts as not done (it is
    trained again); the run is deleted once stale, never while another writer may be
    finishing it."""
    from mlflow.tracking import MlflowClient

    store = TrialStore(uri, "crash")
    store.open_parent({})
    done, crashed = trial(trial=0), trial(trial=1)
    store.log(done, row(done, 10))

    def killed(self, run_id, status=None, end_time=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(MlflowClient, "set_terminated", killed)
    with pytest.raises(KeyboardInterrupt):
        store.log(crashed, row(crashed, 10))
    monkeypatch.undo()

    def status():
        return {r.data.tags["trial_key"]: r.info.status for r in children(uri, "crash")}

    assert status() == {done.key(): "FINISHED", crashed.key(): "RUNNING"}
    assert list(store.finished()) == [done.key()]
    assert crashed.key() in status()  # fresh: perhaps another shard is ending it
    monkeypatch.setattr(store_module, "STALE_S", 0.0)
    assert list(store.finished()) == [done.key()]
    assert status() == {done.key(): "FINISHED"}
    store.log(crashed, row(crashed, 10))  # the rerun's trial
    assert set(store.finished()) == {done.key(), crashed.key()}


OPEN = textwrap.dedent("""
    import os, sys, time
    from experiments.benchmark.store import TrialStore

    store = TrialStore(sys.argv[1], "race")
    store.finished()  # MLflow imported, the experiment read
    open(os.path.join(sys.argv[2], f"ready-{os.getpid()}"), "w").close()
    while not os.path.exists(os.path.join(sys.argv[2], "go")):
        time.sleep(0.001)
    store.open_parent({"preset": "race"})
    print(store.parent_id)
""")


@pytest.mark.slow
def test_parallel_shards_open_one_parent_run(tmp_path):
    from experiments.core import tracking
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    tracking.get_or_create_experiment(client, uri, "benchmark")
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, uri, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
             for _ in range(4)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 4:  # all at the start line, then go
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    (tmp_path / "go").touch()
    ids = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    exp = client.get_experiment_by_name("benchmark")
    parents = client.search_runs([exp.experiment_id], "tags.run_type = 'benchmark'")
    assert len(parents) == 1 and set(ids) == {parents[0].info.run_id}


def test_a_duplicate_parent_of_an_older_version_is_resolved_to_the_oldest(uri):
    first = TrialStore(uri, "dup")
    first.open_parent({})
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("benchmark")
    client.create_run(exp.experiment_id, tags={"benchmark_id": "dup", "run_type": "benchmark"})
    again = TrialStore(uri, "dup")
    again.open_parent({})
    assert again.parent_id == first.parent_id
