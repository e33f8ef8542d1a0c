"""The training and start-up benchmarks run and report every row (no timing asserted)."""

from __future__ import annotations

import math

import pytest

from speed import startup, training


@pytest.mark.slow
def test_training_benchmark_reports_all_paths():
    rows = training.measure(epochs=1, repeats=1)
    assert [r[0] for r in rows] == [
        "fit", "fit, equal settings", "product, no tracking",
        "product, no tracking, jit_compile=true", "product, tracked",
        "product, tracked / product, no tracking"]
    for _, rate, ratio, ci_low, ci_high, low, high in rows[:-1]:
        assert math.isfinite(rate) and rate > 0
        assert low <= ci_low <= ratio <= ci_high <= high
    assert rows[1][2] == 1.0  # the baseline: fit with the product's settings
    assert rows[-1][1] is None and rows[-1][2] == rows[4][1] / rows[2][1]
    assert "| product, tracked |" in training.table(rows)


@pytest.mark.slow
def test_startup_benchmark_times_the_fast_paths():
    rows = dict(startup.measure(repeats=1, include_run=False))
    assert set(rows) >= {"experiments.train --help", "import tensorflow",
                         "experiments.train optimizer.learning_rate=-1 (refused)"}
    assert all(s > 0 for s in rows.values())


@pytest.mark.slow
def test_help_lists_every_group_without_tensorflow():
    from light import run_light

    stdout = run_light("import sys, runpy; sys.argv=['train', '--help']\n"
                       "try:\n    runpy.run_module('experiments.train', run_name='__main__')\n"
                       "except SystemExit as e:\n    assert e.code == 0\n")
    for line in ("optimizer:", "keras_adam", "dataset:", "mnist1d", "model:", "trainer:"):
        assert line in stdout


def test_report_replaces_only_its_section():
    from speed.report import END, START, replace_section

    text = f"intro\n\n## Benchmarks\n\n{START}\nold table\n{END}\n\n## Next\n"
    new = f"{START}\nnew table\n{END}"
    assert replace_section(text, new) == f"intro\n\n## Benchmarks\n\n{new}\n\n## Next\n"
    assert replace_section("intro\n", new) == f"intro\n\n## Benchmarks\n\n{new}\n"


def test_trial_benchmark_reports_a_trial_beside_the_bare_loop():
    from speed import benchmark_trial

    rows = benchmark_trial.measure("breast_cancer_logreg", "sgd", budget=0.1, trials=2,
                                   repeats=1)
    assert [r[0] for r in rows] == ["bare loop", "trial", "trial, new seed"]
    assert rows[0][2] == 1.0
    for _, seconds, ratio, ci_low, ci_high, low, high in rows:
        assert seconds > 0 and low <= ci_low <= ratio <= ci_high <= high
    assert "| trial |" in benchmark_trial.table(rows)
