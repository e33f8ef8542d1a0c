"""The optimizer-step benchmark runs end to end on a tiny model and yields a full table.

Only the shape of the output is checked, never timings: the machines are shared and noisy.
"""

from __future__ import annotations

import math

import numpy as np

import pytest

from speed import hlo as hlo_module
from speed import machine, optimizer_step, step_problem

TINY = 10_000


@pytest.fixture(scope="module")
def tiny_rows():
    return optimizer_step.benchmark_rows(sizes=[TINY], repeats=2, min_sample_seconds=0.001,
                                         rounds=1)


@pytest.mark.slow
def test_one_row_per_rule_and_xla_mode_after_the_controls(tiny_rows):
    assert len(tiny_rows) == 2 * (len(optimizer_step.RULES) + 1)
    assert [(r.rule, r.xla) for r in tiny_rows if r.control] == [
        (optimizer_step.CONTROL_RULE, False), (optimizer_step.CONTROL_RULE, True)]
    assert all(r.control for r in tiny_rows[:2])
    assert {(r.rule, r.xla) for r in tiny_rows if not r.control} == {
        (rule, xla) for rule in optimizer_step.RULES for xla in (False, True)
    }
    assert all(r.size == TINY for r in tiny_rows)


def test_control_pairs_the_builtin_with_itself():
    first, second = step_problem.optimizer_pair("adam", control=True)
    assert type(first) is type(second) and first is not second
    assert type(first).__module__.startswith("keras")
    custom, builtin = step_problem.optimizer_pair("adam")
    assert type(custom).__module__.startswith("custom_optimizers")
    assert type(builtin) is type(second)


def test_median_interval_matches_the_median_standard_error():
    """For normal samples the median's standard error is sqrt(pi/2)·σ/sqrt(n): the 95%
    bootstrap interval is about ±1.96 of it, and contains the sample median."""
    rng = np.random.default_rng(1)
    sigma, n = 0.2, 400
    values = 1.0 + sigma * rng.standard_normal(n)
    low, high = machine.median_interval(values)
    assert low < np.median(values) < high
    expected = 2 * 1.96 * math.sqrt(math.pi / 2) * sigma / math.sqrt(n)
    assert 0.7 * expected < high - low < 1.3 * expected
    assert machine.median_interval([1.5] * 10) == (1.5, 1.5)


@pytest.mark.slow
def test_every_number_is_positive_and_finite(tiny_rows):
    for row in tiny_rows:
        numbers = {
            "custom_ms": row.custom_ms,
            "keras_ms": row.keras_ms,
            "ratio": row.ratio,
            "ratio_q1": row.ratio_q1,
            "ratio_q3": row.ratio_q3,
            "ratio_min": row.ratio_min,
            "ratio_max": row.ratio_max,
            "best_ratio": row.best_ratio,
            "copy_gbps": row.copy_gbps,
            "custom_gbps": row.custom_gbps,
            "keras_gbps": row.keras_gbps,
            "custom_copy_fraction": row.custom_copy_fraction,
            "keras_copy_fraction": row.keras_copy_fraction,
        }
        for name, value in numbers.items():
            assert math.isfinite(value) and value > 0, (row.rule, row.xla, name, value)
        assert row.ratio_min <= row.ratio_q1 <= row.ratio <= row.ratio_q3 <= row.ratio_max
        assert row.ratio_min <= row.ratio_ci_low <= row.ratio <= row.ratio_ci_high
        assert row.ratio_ci_high <= row.ratio_max


@pytest.mark.slow
def test_table_has_a_line_per_row_and_the_machine_on_top(tiny_rows):
    info = machine.machine_info()
    table = optimizer_step.format_table(tiny_rows, info, repeats=2)
    lines = table.splitlines()
    assert lines[0].startswith("# ") and info["date"] in lines[0]
    assert any(info["tensorflow"] in line and info["keras"] in line for line in lines)
    assert any(line.startswith("- CPU: ") for line in lines)
    body = [line for line in lines if line.startswith("| 10k |")]
    assert len(body) == 2 * (len(optimizer_step.RULES) + 1)
    assert sum("| control: built-in adam vs itself |" in line for line in body) == 2
    assert all(line.count("|") == lines[lines.index(body[0]) - 2].count("|") for line in body)


@pytest.mark.slow
def test_compiled_work_is_read_from_xla_hlo(tiny_rows):
    """With XLA, every row counts the bytes and operations of both compiled steps: each
    rule reads and writes at least its minimal traffic, plain SGD exactly (one fused pass:
    w - lr*g reads g and w, writes w; two operations per weight); without XLA, nothing."""
    for row in tiny_rows:
        if not row.xla:
            assert row.custom_work is None and row.keras_work is None
            continue
        for moved, ops in (row.custom_work, row.keras_work):
            assert moved >= optimizer_step.bytes_per_parameter(row.rule) and ops >= 2
    sgd = next(r for r in tiny_rows if r.rule == "sgd" and r.xla)
    assert sgd.custom_work == sgd.keras_work == (12.0, 2.0)


def test_compiled_work_counts_a_handwritten_module():
    hlo = """HloModule m
%fused_computation (p0: f32[100], p1: f32[100], p2: f32[]) -> f32[100] {
  %p0 = f32[100]{0} parameter(0)
  %p1 = f32[100]{0} parameter(1)
  %p2 = f32[] parameter(2)
  %b = f32[100]{0} broadcast(%p2), dimensions={}
  %m = f32[100]{0} multiply(%p1, %b)
  ROOT %s = f32[100]{0} subtract(%p0, %m)
}

ENTRY %main (a0: f32[100], a1: f32[100], a2: f32[], a3: f32[50]) -> (f32[100], f32[50]) {
  %a0 = f32[100]{0} parameter(0)
  %a1 = f32[100]{0} parameter(1)
  %a2 = f32[] parameter(2)
  %a3 = f32[50]{0} parameter(3)
  %f = f32[100]{0} fusion(%a0, %a1, %a2), kind=kLoop, calls=%fused_computation
  %n = f32[50]{0} negate(%a3)
  ROOT %t = (f32[100]{0}, f32[50]{0}) tuple(%f, %n)
}
"""
    # 100 weights: one fusion reads two arrays and writes one (12 bytes a weight) with two
    # operations; 50 more: a negate reads and writes (8 bytes), one operation.
    moved, ops = hlo_module.compiled_work(hlo, parameters=150, min_elements=50)
    assert moved == (100 * 12 + 50 * 8) / 150 and ops == (100 * 2 + 50 * 1) / 150
    # Arrays below min_elements (the scalars, here also the 50) are not counted.
    assert hlo_module.compiled_work(hlo, 100, 100) == (12.0, 2.0)


def test_traffic_per_parameter():
    # Adam reads g, w, m, v and writes w, m, v; SGD reads g, w and writes w.
    assert optimizer_step.bytes_per_parameter("adam") == 7 * 4
    assert optimizer_step.bytes_per_parameter("sgd") == 3 * 4
    for rule in ("momentum", "nesterov", "adagrad", "rmsprop"):
        assert optimizer_step.bytes_per_parameter(rule) == 5 * 4


@pytest.mark.slow
def test_main_prints_the_table(capsys):
    table = optimizer_step.main(["--sizes", "1000", "--repeats", "2", "--rounds", "2",
                                 "--rules", "sgd", "--no-control"])
    out = capsys.readouterr().out
    assert table in out
    assert sum(line.startswith("| 1k | sgd |") for line in out.splitlines()) == 2


def test_quick_defaults():
    args = optimizer_step.parse_args(["--quick"])
    assert args.sizes == [optimizer_step.DEFAULT_SIZES[0]]
    assert args.repeats == optimizer_step.QUICK_REPEATS
    with pytest.raises(SystemExit):
        optimizer_step.parse_args(["--repeats", "0"])
