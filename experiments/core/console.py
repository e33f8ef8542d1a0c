"""A quiet console: the start-up notices of TensorFlow and MLflow are not shown by default.

TensorFlow's C++ layer prints a dozen lines when it is imported and when it first looks for
devices (oneDNN, "Could not find cuda drivers", ``cpu_feature_guard`` with its instruction
list, absl's "All log messages before absl::InitializeLog()", ``failed call to cuInit``
on a machine without a GPU). Since TensorFlow 2.19 ``TF_CPP_MIN_LOG_LEVEL`` no longer
silences them (they are written before absl's logging starts), so the first
``import tensorflow`` of the process runs with the C++ stderr (file descriptor 2) captured;
afterwards the captured lines are written back, except those matching ``NOISE``. Only that
window is captured: a crash later prints as usual.

A user who sets ``TF_CPP_MIN_LOG_LEVEL`` (any value, e.g. ``0`` to see everything) gets
TensorFlow's own behaviour. MLflow's "Creating initial MLflow database tables..." and
"Updating database tables" (logged at INFO when a new SQLite store is made) are not shown
unless ``MLFLOW_LOGGING_LEVEL`` is set. ``install()`` runs when the
``experiments`` package is imported; it imports neither library.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys

NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers on your machine"
    r"|cpu_feature_guard\.cc|^To enable the following instructions:"
    r"|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered")


# The filter of ``filtered_stderr``: a separate process, so that what was written before
# an abort (a C++ CHECK failure, an illegal instruction) still reaches the console.
_FILTER = ("import re, sys\n"
           "noise = re.compile(sys.argv[1])\n"
           "for line in sys.stdin.buffer:\n"
           "    if not noise.search(line.decode(errors='replace')):\n"
           "        sys.stdout.buffer.write(line)\n"
           "        sys.stdout.buffer.flush()\n")


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = NOISE):
    """Inside the block, file descriptor 2 (C++ and Python writes alike) goes through a
    filter that writes back every line ``noise`` does not match, in order; the block's
    end waits for it. The filter is a small child process reading a pipe: if the process
    dies inside the block (``abort()`` in TensorFlow's import, a segfault), the kernel
    closes the pipe and the filter still writes out what was captured, the fatal message
    included. Where no process can be started, nothing is filtered."""
    import subprocess

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        child = subprocess.Popen([sys.executable, "-S", "-c", _FILTER, noise.pattern],
                                 stdin=subprocess.PIPE, stdout=saved, stderr=saved)
    except OSError:
        os.close(saved)
        yield
        return
    os.dup2(child.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        child.stdin.close()  # the filter sees the end of the pipe
        child.wait()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Wraps the first ``import tensorflow`` (and its first device query) in
    ``filtered_stderr``; removes itself once that import ran."""

    def __init__(self):
        self._looking = False

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or self._looking:
            return None
        self._looking = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._looking = False
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            with filtered_stderr():
                execute(module)
                # CUDA is initialised (and complains if absent) on the first device query;
                # listing devices does not yet fix the logical devices a strategy may set up.
                module.config.list_physical_devices("GPU")

        spec.loader.exec_module = exec_module
        return spec


def _redacting_records() -> None:
    """Hydra's launchers and sweepers log every job's overrides (``#0 : tracking.uri=...``),
    a password with them: their log records are redacted (``experiments.core.secrets``)
    when made, before any handler or file sees them."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacting", False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        if record.name.startswith("hydra"):  # hydra.*, hydra_plugins.*
            from experiments.core.secrets import redact

            message = record.getMessage()
            safe = redact(message)
            if safe != message:
                record.msg, record.args = safe, None
        return record

    factory.redacting = True
    logging.setLogRecordFactory(factory)


def install() -> None:
    """Filter TensorFlow's start-up notices (unless ``TF_CPP_MIN_LOG_LEVEL`` is set or
    TensorFlow is already imported), redact Hydra's log records and lower MLflow's
    store-creation messages."""
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ and "tensorflow" not in sys.modules and not any(
            isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    _redacting_records()
    if "MLFLOW_LOGGING_LEVEL" not in os.environ:
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
