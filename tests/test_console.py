"""A quiet console: TensorFlow's start-up notices filtered, everything else kept (the
whole console of a sweep: tests/test_train.py::test_two_job_multirun_is_grouped)."""

from __future__ import annotations

import os
import sys

from experiments import console


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
