"""Start-up cost of ``python -m experiments.train``: help, a refused typo, the default run.

Usage::

    python -m speed.startup [--repeats 3]

Each command runs as a fresh process (median wall time over ``--repeats``), next to the
imports it cannot avoid: Hydra + OmegaConf (every path), MLflow and TensorFlow (a run).
The default run trains into a temporary tracking store, so the project's own store is
left alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.core import markdown

ROOT = Path(__file__).resolve().parents[1]


def _time(args, env) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def measure(repeats: int = 3, include_run: bool = True):
    """Rows: (what, median seconds)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        store = f"tracking.uri=sqlite:///{Path(tmp) / 'mlflow.db'}"
        commands = {
            "python (interpreter only)": [py, "-c", "pass"],
            "import hydra, omegaconf": [py, "-c", "import hydra, omegaconf"],
            "import mlflow": [py, "-c", "import mlflow"],
            "import tensorflow": [py, "-c", "import tensorflow"],
            "experiments.train --help": [py, "-m", "experiments.train", "--help"],
            "experiments.train optimizer.learning_rate=-1 (refused)":
                [py, "-m", "experiments.train", "optimizer.learning_rate=-1"],
        }
        if include_run:
            commands["experiments.train (default run, end to end)"] = [
                py, "-m", "experiments.train", store, f"hydra.run.dir={tmp}/out"]
        times = {name: [] for name in commands}
        for _ in range(repeats):
            for name, args in commands.items():
                times[name].append(_time(args, env))
    return [(name, statistics.median(v)) for name, v in times.items()]


def table(rows) -> str:
    return markdown.table(["command", "wall time (median, s)"],
                          [(f"`{name}`", f"{seconds:.2f}") for name, seconds in rows])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    out = table(measure(args.repeats))
    print(out)
    return out


if __name__ == "__main__":
    main()
