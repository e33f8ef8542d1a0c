"""A quiet console: TensorFlow's start-up notices filtered, everything else kept (the
whole console of a sweep: tests/test_train.py::test_two_job_multirun_is_grouped)."""

from __future__ import annotations

import os
import sys

import pytest

from experiments.core import console


def test_filtered_stderr_drops_only_the_notices(capfd):
    with console.filtered_stderr():
        os.write(2, b"I0000 00:00:17.6 1 cudart_stub.cc:31] Could not find cuda drivers on "
                    b"your machine, GPU will not be used.\n")
        print("a warning of ours", file=sys.stderr, flush=True)
        os.write(2, b"To enable the following instructions: AVX2 FMA, in other operations\n"
                    b"E0000 a real C++ error\n")
    assert capfd.readouterr().err == "a warning of ours\nE0000 a real C++ error\n"


def test_a_log_level_the_user_set_is_respected(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    before = list(sys.meta_path)
    monkeypatch.delitem(sys.modules, "tensorflow")  # as if not imported yet
    console.install()
    assert sys.meta_path == before


def test_install_puts_the_quiet_import_first_and_lowers_mlflow(monkeypatch):
    import logging

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow")  # as if not imported yet
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path
                                           if not isinstance(f, console._QuietTensorFlowImport)])
    store_logger = logging.getLogger("mlflow.store.db.utils")
    monkeypatch.setattr(store_logger, "level", logging.INFO)
    console.install()
    assert isinstance(sys.meta_path[0], console._QuietTensorFlowImport)
    assert store_logger.level == logging.WARNING
    console.install()  # once only
    assert sum(isinstance(f, console._QuietTensorFlowImport) for f in sys.meta_path) == 1


@pytest.mark.slow
def test_importing_tensorflow_after_experiments_is_quiet():
    """In a fresh process TensorFlow's start-up notices reach stderr, unless ``experiments``
    (which calls ``install()``) was imported first; ours stay either way."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}

    def stderr(code):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=180)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stderr

    loud = stderr("import tensorflow")
    quiet = stderr("import experiments, sys, tensorflow; print('ours', file=sys.stderr)")
    if not console.NOISE.search(loud):
        pytest.skip("this TensorFlow prints no start-up notices: nothing to filter")
    assert quiet.strip() == "ours", quiet


def test_a_message_written_before_an_abort_is_not_lost():
    """TensorFlow's import can abort() (a CHECK failure, an unsupported CPU): what it wrote
    while stderr was filtered still reaches the console (it used to die with the process)."""
    import subprocess

    code = ("import os\n"
            "from experiments.core import console\n"
            "with console.filtered_stderr():\n"
            "    os.write(2, b'oneDNN custom operations are on: noise\\n')\n"
            "    os.write(2, b'F0000 check failed: the CPU lacks AVX\\n')\n"
            "    os.abort()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == -6  # SIGABRT
    assert "F0000 check failed: the CPU lacks AVX" in result.stderr
    assert "oneDNN" not in result.stderr
