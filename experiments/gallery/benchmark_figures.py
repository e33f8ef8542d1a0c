"""The benchmark's figures (``docs/benchmark/*.png``): a thin adapter over the benchmark's
own code, kept apart so that it is the one place to change when that code moves.

It uses, and only uses: ``experiments.benchmark.settings`` (the composed
``conf/benchmark.yaml``), ``benchmark_specs``, ``TrialStore`` (the trials stored under a
``benchmark_id``), ``run_trials`` (the missing ones), ``results_frame``, ``exact_pairs``,
and ``experiments.benchmark.report.write_report``, whose ``plots/`` are copied into
``docs/benchmark/``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from experiments.gallery import Context, Figure, register
from experiments.gallery.runs import compose

# The command line of the benchmark whose trials are drawn: the plain default, whose run
# the README reports (benchmark_id default-benchmark); tests point it elsewhere.
OVERRIDES: list[str] = []
PLOTS = ("profiles", "budget_curves", "lr_sensitivity", "time_to_target")


def _settings(ctx: Context):
    from experiments import benchmark

    return benchmark.settings(compose("benchmark", [*OVERRIDES, f"tracking.uri={ctx.uri}"]))


def _trials(ctx: Context):
    """(settings, every trial's spec, the stored row of each or None)."""
    from experiments import benchmark

    s = _settings(ctx)
    specs = benchmark.benchmark_specs(s)
    done = benchmark.TrialStore(s.uri, s.benchmark_id, s.experiment).finished()
    return s, specs, [done.get(spec.key()) for spec in specs]


def _status(ctx: Context) -> str:
    s, specs, rows = _trials(ctx)
    missing = sum(row is None for row in rows)
    if not missing:
        return f"reads {len(rows)} stored trials of benchmark {s.benchmark_id!r}"
    return (f"{len(rows) - missing} of {len(rows)} trials of benchmark {s.benchmark_id!r} "
            f"stored; trains the {missing} others")


def make_benchmark(ctx: Context) -> None:
    from experiments import benchmark
    from experiments.benchmark import report

    s, specs, rows = _trials(ctx)
    missing = sum(row is None for row in rows)
    if missing:
        ctx.log(f"{missing} of {len(rows)} trials not stored: training them "
                f"(benchmark {s.benchmark_id!r})")
        rows = benchmark.run_trials(specs, benchmark.TrialStore(s.uri, s.benchmark_id,
                                                                 s.experiment),
                                    workers=s.workers, out=ctx.out)
    else:
        ctx.log(f"{len(rows)} stored trials of benchmark {s.benchmark_id!r}")
    with tempfile.TemporaryDirectory() as tmp:
        report.write_report(
            benchmark.results_frame(rows), s.workloads, Path(tmp),
            exact_pairs=benchmark.exact_pairs(s.optimizers), n_boot=s.bootstrap,
            seed=s.seed, r_max=s.r_max, level=s.level)
        for name in PLOTS:
            shutil.copyfile(Path(tmp) / "plots" / f"{name}.png",
                            ctx.path(f"docs/benchmark/{name}.png"))


register(Figure(
    name="benchmark",
    outputs=tuple(f"docs/benchmark/{name}.png" for name in PLOTS),
    command=" ".join(["python -m experiments.benchmark", *OVERRIDES]),
    cost="the default preset: at most 30 min wall time on 2 cores",
    make=make_benchmark,
    status=_status,
    description="performance profiles, budget curves, learning-rate sensitivity, steps "
                "to target"))
