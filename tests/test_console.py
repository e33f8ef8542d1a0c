"""A quiet console: TensorFlow's start-up notices filtered, everything else kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from experiments import console

ROOT = Path(__file__).resolve().parents[1]


def test_filtered_stderr_drops_only_the_notices(capfd):
    with console.filtered_stderr():
        os.write(2, b"I0000 00:00:17.6 1 cudart_stub.cc:31] Could not find cuda drivers on "
                    b"your machine, GPU will not be used.\n")
        print("a warning of ours", file=sys.stderr, flush=True)
        os.write(2, b"To enable the following instructions: AVX2 FMA, in other operations\n"
                    b"E0000 a real C++ error\n")
    assert capfd.readouterr().err == "a warning of ours\nE0000 a real C++ error\n"


def test_importing_tensorflow_through_the_experiments_is_quiet():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = ("import experiments, sys, tensorflow as tf; print('kept', file=sys.stderr); "
            "tf.constant(1.0) + 1.0")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == "kept\n"


def test_a_log_level_the_user_set_is_respected(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    before = list(sys.meta_path)
    monkeypatch.delitem(sys.modules, "tensorflow")  # as if not imported yet
    console.install()
    assert sys.meta_path == before
