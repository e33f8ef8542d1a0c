"""``trainer.strategy``: mirrored over two logical CPUs and two real workers on 127.0.0.1
give the single-device numbers; only the chief logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOB = ["optimizer=momentum", "trainer.epochs=2", "trainer.max_steps=12",
       "trainer.batch_size=64", "tracking.log_model=false", "tracking.log_plots=false"]


def _env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)


def _train(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments.train", *JOB, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env or _env())


def _losses(uri):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name("optimizer-lab")
    runs = c.search_runs([exp.experiment_id])
    return runs, [{m.step: m.value for m in c.get_metric_history(r.info.run_id, "loss")}
                  for r in runs]


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('single') / 'mlflow.db'}"
    result = _train(f"tracking.uri={uri}")
    assert result.returncode == 0, result.stderr[-2000:]
    runs, (losses,) = _losses(uri)
    return runs[0], losses


def _assert_same(losses, reference, runs, reference_run):
    assert sorted(losses) == sorted(reference) == list(range(1, 13))
    assert losses == pytest.approx(reference, rel=1e-4)
    for key in ("val_loss", "test_loss"):
        assert runs[0].data.metrics[key] == pytest.approx(
            reference_run.data.metrics[key], rel=1e-4)


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_matches_one_device(tmp_path, single_device):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = _train("trainer.strategy=mirrored", "trainer.logical_cpus=2",
                    f"tracking.uri={uri}")
    assert result.returncode == 0, result.stderr[-2000:]
    runs, (losses,) = _losses(uri)
    assert runs[0].data.params["trainer.strategy"] == "mirrored"
    _assert_same(losses, single_device[1], runs, single_device[0])


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_localhost_match_one_device_and_only_the_chief_logs(
        tmp_path, single_device):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers},
                                "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "experiments.train", *JOB, "trainer.strategy=multi_worker",
             f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / f'worker{index}'}"],
            cwd=ROOT, env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-2000:]
    runs, all_losses = _losses(uri)
    assert len(runs) == 1, "only the chief (worker 0) logs"
    _assert_same(all_losses[0], single_device[1], runs, single_device[0])


@pytest.mark.parametrize("args, fragment", [
    (["trainer.strategy=ring"], "choose one of default, mirrored, multi_worker"),
    (["trainer.strategy=mirrored", "trainer.jit_compile=true"], "not supported"),
    (["trainer.strategy=multi_worker"], "needs the TF_CONFIG"),
    (["trainer.logical_cpus=0"], "trainer.logical_cpus=0"),
])
def test_bad_strategy_settings_are_refused(args, fragment):
    env = _env()
    env.pop("TF_CONFIG", None)
    result = subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert fragment in result.stderr and "Traceback" not in result.stderr
