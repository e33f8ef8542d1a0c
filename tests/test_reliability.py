"""Nothing lost on divergence, interruption, crashes, parallel sweeps or bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments.train.config import register_schemas as register_train_schemas
from experiments.core import tracking
from experiments.train.config import validate

register_train_schemas()

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["tracking.log_model=false", "tracking.log_plots=false"]


def make_cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_of(uri, experiment="optimizer-lab"):
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    return [] if exp is None else c.search_runs([exp.experiment_id])


def cli(*args, timeout=300, **popen):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env, **popen)


# ----------------------------------------------------------------------------- divergence
DIVERGING = ["optimizer=sgd", "optimizer.learning_rate=1e9", "trainer.epochs=3",
             "trainer.steps_per_execution=1"]


@pytest.mark.slow
def test_divergence_fails_the_run_and_keeps_its_metrics(tmp_path):
    from experiments.train.pipeline import run
    from experiments.train.trainer import Diverged

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = make_cfg(*DIVERGING, *QUIET, f"tracking.uri={uri}")
    with pytest.raises(Diverged) as info:
        run(cfg)
    (r,) = runs_of(uri)
    assert r.info.status == "FAILED"
    assert r.data.tags["failure_reason"] == "diverged"
    step = int(r.data.tags["diverged_at_step"])
    assert step == info.value.step >= 2
    history = client(uri).get_metric_history(r.info.run_id, "loss")
    assert [m.step for m in history] == list(range(1, step))
    assert all(np.isfinite(m.value) for m in history)


@pytest.mark.slow
def test_a_diverged_job_does_not_stop_the_sweep(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli("-m", "optimizer=sgd", "optimizer.learning_rate=1e9,0.01",
                 "trainer.epochs=1", "trainer.max_steps=20", *QUIET, f"tracking.uri={uri}",
                 f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Diverged" in result.stderr
    statuses = sorted((r.data.params["optimizer.learning_rate"], r.info.status)
                      for r in runs_of(uri))
    assert statuses == [("0.01", "FINISHED"), ("1000000000.0", "FAILED")]


@pytest.mark.slow
def test_a_diverged_single_run_exits_non_zero(tmp_path):
    result = cli(*DIVERGING, *QUIET, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "marked FAILED" in result.stderr


# ----------------------------------------------------------------------------- interruption
LONG = ["dataset=mnist5k", "model=mlp", "model.width=256", "trainer.epochs=8",
        "trainer.checkpoint_every_s=0",
        "trainer.batch_size=32", "trainer.steps_per_execution=4", *QUIET]


def _start(tmp_path, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "experiments.train", *LONG, *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(tmp_path, proc, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = list((tmp_path / "checkpoints").glob("*/current/progress.json"))
        if found:
            return found[0].parent.parent
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no checkpoint appeared")


def _steps(uri, run_id, key):
    return [m.step for m in sorted(client(uri).get_metric_history(run_id, key),
                                   key=lambda m: m.step)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same job run straight through: the reference for the resumed ones."""
    tmp = tmp_path_factory.mktemp("straight")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    result = cli(*LONG, f"tracking.uri={uri}")
    assert result.returncode == 0, result.stderr[-2000:]
    (r,) = runs_of(uri)
    history = client(uri).get_metric_history(r.info.run_id, "loss")
    return r, {m.step: m.value for m in history}, _steps(uri, r.info.run_id, "val_loss")


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
@pytest.mark.slow
def test_interrupted_run_resumes_exactly(tmp_path, how, uninterrupted):
    """Stop a real training process mid-epoch, resume it: the same run, the same numbers."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _start(tmp_path, f"tracking.uri={uri}")
    _wait_for_checkpoint(tmp_path, proc)
    time.sleep(0.2)  # into the second epoch; 6 more epochs remain, so never too late
    proc.send_signal(getattr(signal, how))
    _, stderr = proc.communicate(timeout=120)
    (r,) = runs_of(uri)
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
        assert r.info.status == "RUNNING"  # nobody could say otherwise; resume picks it up
    else:
        assert proc.returncode == (130 if how == "SIGINT" else 143), stderr[-2000:]
        assert "trainer.resume=" in stderr and "Traceback" not in stderr
        assert r.info.status == "KILLED"
        assert r.data.tags["interrupted_by"] == how
        stopped_at = int(r.data.tags["interrupted_at_step"])
        progress = json.loads((tmp_path / "checkpoints" / r.info.run_id / "current" /
                               "progress.json").read_text())
        assert progress["step"] == stopped_at
        # everything up to the stop was flushed
        assert _steps(uri, r.info.run_id, "loss")[-1] == stopped_at

    result = cli(*LONG, f"tracking.uri={uri}", "trainer.resume=true")
    assert result.returncode == 0, result.stderr[-2000:]
    (resumed,) = runs_of(uri)
    assert resumed.info.run_id == r.info.run_id and resumed.info.status == "FINISHED"
    straight, reference, straight_epoch_steps = uninterrupted
    steps = _steps(uri, r.info.run_id, "loss")
    assert steps == sorted(reference), "no step duplicated or missing"
    epoch_steps = _steps(uri, r.info.run_id, "val_loss")
    assert epoch_steps == straight_epoch_steps, "one val_loss per epoch, none repeated"
    values = {m.step: m.value for m in client(uri).get_metric_history(r.info.run_id, "loss")}
    assert values == pytest.approx(reference, rel=1e-5, abs=1e-6)
    assert resumed.data.metrics["test_loss"] == pytest.approx(
        straight.data.metrics["test_loss"], rel=1e-5)


@pytest.mark.slow
def test_a_run_still_training_is_not_resumed_twice(tmp_path, uninterrupted):
    """``trainer.resume=true`` of a run that another process is training is refused at
    once, naming that process; the first one finishes the run untouched."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = _start(tmp_path, f"tracking.uri={uri}")
    _wait_for_checkpoint(tmp_path, first)
    first.send_signal(signal.SIGSTOP)  # still training (and holding the run) however slow
    try:
        start = time.time()
        second = cli(*LONG, f"tracking.uri={uri}", "trainer.resume=true", timeout=120)
        refused_in = time.time() - start
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"is still being trained by process {first.pid}@" in second.stderr
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert refused_in < 60  # before TensorFlow: seconds, even on a loaded machine
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    (r,) = runs_of(uri)
    assert r.info.status == "FINISHED" and "resumed_from_step" not in r.data.tags
    assert _steps(uri, r.info.run_id, "loss") == sorted(uninterrupted[1])


@pytest.mark.slow
def test_resume_without_a_run_is_refused(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli("trainer.max_steps=2", *QUIET, f"tracking.uri={uri}", "trainer.resume=true")
    assert result.returncode == 2
    assert "no interrupted or crashed run" in result.stderr
    assert "Traceback" not in result.stderr
    assert runs_of(uri) == []


# ----------------------------------------------------------------------------- concurrency
@pytest.mark.slow
def test_parallel_sweep_on_a_fresh_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    result = cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=3",
                 "optimizer=adam,keras_adam,sgd", "trainer.seed=0", "trainer.max_steps=30",
                 "trainer.epochs=2", *QUIET, f"tracking.uri={uri}",
                 f"hydra.sweep.dir={tmp_path / 'sweep'}", timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "locked" not in result.stderr
    runs = runs_of(uri)
    assert sorted(r.data.tags["optimizer"] for r in runs) == ["adam", "keras_adam", "sgd"]
    for r in runs:
        assert r.info.status == "FINISHED"
        assert _steps(uri, r.info.run_id, "loss") == list(range(1, 31))


# ----------------------------------------------------------------------------- tracking store
def test_unreachable_server_is_refused_before_training(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.time()
    result = cli(f"tracking.uri=http://127.0.0.1:{port}", timeout=60)
    assert result.returncode == 2
    assert f"http://127.0.0.1:{port} is not reachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.time() - start < 30


def test_unwritable_store_is_refused(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the store's folder should be")
    with pytest.raises(tracking.TrackingUnavailable, match="cannot create"):
        tracking.probe_store(f"sqlite:///{blocker / 'mlflow.db'}")
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.raises(tracking.TrackingUnavailable, match="not writable"):
            tracking.probe_store(f"sqlite:///{ro / 'mlflow.db'}")


# ----------------------------------------------------------------------------- reproducibility
@pytest.mark.slow
def test_same_seed_same_numbers_other_seed_other_numbers():
    from experiments.train.pipeline import run

    def once(seed):
        return run(make_cfg("tracking.enabled=false", "trainer.max_steps=15",
                            "trainer.epochs=1", f"trainer.seed={seed}"))

    a, b, c = once(0), once(0), once(1)
    assert a["val_loss"] == b["val_loss"] and a["test_loss"] == b["test_loss"]
    assert a["val_loss"] != c["val_loss"]


# ----------------------------------------------------------------------------- secrets
@pytest.mark.slow
def test_credentials_never_reach_the_tracker(tmp_path, monkeypatch):
    from experiments.train.pipeline import run

    monkeypatch.setenv("LAB_TOKEN", "s3cr3t-token")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = make_cfg("trainer.max_steps=2", "tracking.log_plots=false", f"tracking.uri={uri}",
                   "+tracking.tags.deploy_token=${oc.env:LAB_TOKEN}",
                   "+tracking.tags.source=https://alice:hunter2@example.org/repo")
    result = run(cfg, overrides=["+tracking.tags.deploy_token=s3cr3t-token"])
    c = client(uri)
    r = c.get_run(result["run_id"])
    everything = json.dumps([r.data.params, r.data.tags])
    for folder in ("config",):
        for a in c.list_artifacts(r.info.run_id, folder):
            everything += Path(c.download_artifacts(r.info.run_id, a.path)).read_text()
    assert "s3cr3t-token" not in everything and "hunter2" not in everything
    assert r.data.tags["deploy_token"] == "***"
    assert r.data.tags["source"] == "https://***@example.org/repo"


@pytest.mark.parametrize("raw, safe", [
    ("postgresql://user:password@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("https://host/x?token=abc&y=1", "https://host/x?token=***&y=1"),
])
def test_redact(raw, safe):
    assert tracking.redact(raw) == safe


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("overrides, fragment", [
    (["dataset.limit=1"], "limit"),
    (["trainer.batch_size=100000"], "trainer.batch_size=100000 is larger than the training"),
    (["trainer.epochs=0"], "trainer.epochs=0"),
    (["trainer.steps_per_execution=0"], "trainer.steps_per_execution=0"),
    (["tracking.log_every_n_steps=0"], "tracking.log_every_n_steps=0"),
    (["dataset.val_fraction=0"], "val_fraction"),
    (["dataset.test_fraction=0.95"], "test_fraction"),
    (["model.width=0"], "width"),
    (["model.activation=swishy"], "swishy"),
    (["optimizer=momentum", "optimizer.momentum=-0.1"], "optimizer.momentum=-0.1"),
    (["optimizer=rmsprop", "optimizer.rho=1"], "optimizer.rho=1.0"),
    (["optimizer.gradient_accumulation_steps=1"], "gradient_accumulation_steps=1"),
])
@pytest.mark.slow
def test_bad_values_leave_no_run(tmp_path, overrides, fragment):
    from experiments.train.pipeline import run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = make_cfg(*overrides, "trainer.max_steps=2", f"tracking.uri={uri}")
    with pytest.raises(ValueError) as info:
        validate(cfg)
        run(cfg)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
    assert runs_of(uri) == []


def test_dead_network_with_finite_loss_counts_as_diverged():
    """Weights overflowing to NaN while the logged loss stays finite still stop training."""
    from types import SimpleNamespace

    from experiments.train.trainer import Diverged, fit

    class FakeTrainer:
        names = ["loss", "correct", "grad_norm", "weight_norm"]

        def epoch_batches(self, n, batch_size, seed, epoch):
            return [np.arange(batch_size)] * 3

        def run_batches(self, batches, steps_per_execution, align=0, first_step=0):
            yield np.array([[2.3, 1.0, 1e30, 5.0], [2.3, 1.0, np.inf, np.nan],
                            [2.3, 1.0, 1.0, 1.0]])

    splits = SimpleNamespace(x_train=np.zeros((6, 1)))
    seen = []
    with pytest.raises(Diverged, match="grad_norm became inf at step 2") as info:
        fit(FakeTrainer(), splits, epochs=1, batch_size=2, seed=0,
            on_step=lambda step, m: seen.append(step))
    assert info.value.step == 2 and info.value.what == "grad_norm"
    assert seen == [1]


# ----------------------------------------------------------------------------- run lifecycle
@pytest.mark.slow
def test_a_failure_after_the_run_is_created_ends_it_failed(tmp_path, monkeypatch):
    """Whatever fails between creating the run and training (here: logging the optimizer's
    paths) ends the run FAILED with the reason; nothing stays RUNNING."""
    from experiments.train import pipeline

    def broken(logger, optimizer):
        raise RuntimeError("the store went away")

    monkeypatch.setattr(pipeline, "log_optimizer_paths", broken)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(RuntimeError, match="the store went away"):
        pipeline.run(make_cfg("trainer.max_steps=2", *QUIET, f"tracking.uri={uri}"))
    (r,) = runs_of(uri)
    assert r.info.status == "FAILED"
    assert r.data.tags["failure_reason"] == "RuntimeError"
    assert r.data.tags["failure_message"] == "the store went away"


# ----------------------------------------------------------------------------- growth
@pytest.mark.slow
def test_a_finished_run_leaves_no_checkpoint_behind(tmp_path, monkeypatch):
    from experiments.core import resume
    from experiments.train.pipeline import run

    saved = []
    real = resume.save_checkpoint
    monkeypatch.setattr(resume, "save_checkpoint",
                        lambda folder, *a: saved.append(folder) or real(folder, *a))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run(make_cfg("trainer.epochs=2", "trainer.checkpoint_every_s=0", *QUIET,
                          f"tracking.uri={uri}"))
    assert saved and saved[0] == tmp_path / "checkpoints" / result["run_id"]
    assert not saved[0].exists(), "a FINISHED run has nothing to resume"


@pytest.mark.parametrize("config", ["train", "landscape", "surface"])
def test_output_folders_of_the_same_second_differ(config):
    """Two runs or sweeps started in the same second got one folder (and one sweep tag)."""
    import re

    from experiments.landscape.config import register_schemas as landscape_schemas
    from experiments.surface.config import register_schemas as surface_schemas

    landscape_schemas()
    surface_schemas()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        folders = [compose(config, return_hydra_config=True).hydra for _ in range(2)]
    for key in ("run", "sweep"):
        a, b = (str(f[key].dir) for f in folders)
        assert re.search(r"/\d{2}-\d{2}-\d{2}-\d{6}$", a), a
        assert a != b
