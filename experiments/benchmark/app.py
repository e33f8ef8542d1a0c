"""The benchmark's command: its checked settings, the run (or resume), the calibration.

``settings(cfg)`` checks a composed ``conf/benchmark.yaml`` without TensorFlow or MLflow
and raises ``BenchmarkError`` (a ``ConfigError``) with one line; ``experiments.cli``
refuses through it before Hydra runs the app (``__main__``).
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from experiments.benchmark.pool import execute
from experiments.benchmark.trials import TrialSpec, plan_trials
from experiments.benchmark.workloads import (PROJECT_ROOT, WORKLOAD_DIR, BenchmarkError,
                                             OPTIMIZER_SETS, Optimizer, Workload, exact_pairs,
                                             load_workload, select_optimizers, write_target)

MODES = ("benchmark", "tuned", "defaults", "calibrate")
RULESETS = ("tuned", "defaults")

#: Every key of conf/benchmark.yaml (and of a conf/preset); None: a free value.
SCHEMA = {
    "mode": None, "benchmark_id": None, "optimizers": None, "workloads": None,
    "workload_dir": None, "seed": None, "shard": None, "workers": None, "eval_every": None,
    "output_dir": None,
    "scoring": {"bootstrap": None, "r_max": None, "level": None},
    "tracking": {"enabled": None, "uri": None, "experiment_name": None},
    "preset": {"name": None, "description": None, "workloads": None, "optimizers": None,
               "budget": None, "stop_at_target": None,
               "tuned": {"trials": None, "studies": None}, "at_defaults": {"seeds": None},
               "calibrate": {"references": None, "trials": None, "seeds": None,
                             "budget": None}},
}


def check_keys(c: dict, schema: dict = SCHEMA, prefix: str = "") -> None:
    """Refuse a key the benchmark does not read (``+nope=1``, ``+preset.tuned.k=3``)."""
    for key, value in c.items():
        if key not in schema:
            raise BenchmarkError(f"{prefix}{key} is not a key of the benchmark's config: "
                                 f"valid keys{' under ' + prefix[:-1] if prefix else ''} are "
                                 f"{', '.join(schema)}")
        if isinstance(schema[key], dict):
            if not isinstance(value, dict):
                raise BenchmarkError(f"{prefix}{key} must be a mapping of "
                                     f"{', '.join(schema[key])}")
            check_keys(value, schema[key], f"{prefix}{key}.")


@dataclass
class Settings:
    """The checked config: what to run and where."""

    mode: str
    benchmark_id: str
    workloads: list
    optimizers: list
    preset: dict
    seed: int
    shard: tuple[int, int] | None
    workers: int
    eval_every: int | None
    output_dir: Path
    bootstrap: int
    r_max: float
    level: float
    uri: str | None
    experiment: str
    overrides: list = field(default_factory=list)


def _shard(value) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise BenchmarkError(f"shard={value!r} is not valid: write i/n with 0 <= i < n, "
                             "e.g. shard=0/2")
    return int(m.group(1)), int(m.group(2))


def _integer(key: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BenchmarkError(f"{key}={value!r} must be an integer >= {low}")
    return value


def _number(key: str, value, low: float, high: float, low_open=True, high_open=False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and \
             (value < high if high_open else value <= high)
    if not ok:
        raise BenchmarkError(f"{key}={value!r} must be a number in "
                             f"{'(' if low_open else '['}{low:g}, {high:g}"
                             f"{')' if high_open else ']'}")
    return float(value)


def settings(cfg) -> Settings:
    """Check a composed ``conf/benchmark.yaml``; ``BenchmarkError`` with one line."""
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("hydra", None)
    check_keys(c)
    if c["mode"] not in MODES:
        raise BenchmarkError(f"mode={c['mode']!r} is not valid: choose one of "
                             f"{', '.join(MODES)}")
    shard = _shard(c["shard"])
    preset = c["preset"]
    _integer("seed", c["seed"], 0)
    if c["seed"] >= 2**32:
        raise BenchmarkError(f"seed={c['seed']} must be below 2**32")
    for key, value in (("preset.tuned.trials", preset["tuned"]["trials"]),
                       ("preset.tuned.studies", preset["tuned"]["studies"]),
                       ("preset.at_defaults.seeds", preset["at_defaults"]["seeds"]),
                       ("preset.calibrate.trials", preset["calibrate"]["trials"]),
                       ("preset.calibrate.seeds", preset["calibrate"]["seeds"]),
                       ("scoring.bootstrap", c["scoring"]["bootstrap"])):
        _integer(key, value)
    for key, value in (("preset.budget", preset["budget"]),
                       ("preset.calibrate.budget", preset["calibrate"]["budget"])):
        _number(key, value, 0, 10)
    r_max = _number("scoring.r_max", c["scoring"]["r_max"], 1, 1e9)
    level = _number("scoring.level", c["scoring"]["level"], 0, 1, high_open=True)
    if not isinstance(preset["stop_at_target"], bool):
        raise BenchmarkError(f"preset.stop_at_target={preset['stop_at_target']!r} must be "
                             "true or false")
    workers = c["workers"]
    if workers is None:
        workers = os.cpu_count() or 1
    _integer("workers", workers)
    eval_every = c["eval_every"]
    if eval_every is not None:
        _integer("eval_every", eval_every)
    folder = Path(c["workload_dir"]) if c.get("workload_dir") else WORKLOAD_DIR
    names = c["workloads"] or preset["workloads"]
    if isinstance(names, str) or not names:
        raise BenchmarkError(f"workloads={names!r} is not valid: give a list of "
                             "conf/workload names, e.g. workloads=[digits_mlp]")
    workloads = [load_workload(n, folder) for n in names]
    choice = c["optimizers"] if c["optimizers"] is not None else preset["optimizers"]
    optimizers = select_optimizers(choice)
    if c["mode"] == "calibrate":
        select_optimizers(preset["calibrate"]["references"])
    if c["mode"] in ("benchmark", "tuned", "defaults"):
        missing = [w.name for w in workloads if w.target is None]
        if missing:
            raise BenchmarkError(f"workload(s) {', '.join(missing)} have no target yet: run "
                                 "python -m experiments.benchmark mode=calibrate first")
    bid = c["benchmark_id"] or f"{preset['name']}-{c['mode']}"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(bid)):
        raise BenchmarkError(f"benchmark_id={bid!r} is not valid: use letters, digits, "
                             "'.', '_' and '-'")
    uri = None
    if c["tracking"]["enabled"]:
        from experiments import tracking

        uri = tracking.resolve_tracking_uri(c["tracking"]["uri"])
    out = Path(c["output_dir"]) if c["output_dir"] else PROJECT_ROOT / "outputs" / "benchmark" / bid
    return Settings(c["mode"], bid, workloads, optimizers, preset, int(c["seed"]), shard,
                    int(workers), eval_every, out, int(c["scoring"]["bootstrap"]), r_max,
                    level, uri, c["tracking"]["experiment_name"])


def check(cfg) -> None:
    """``settings`` for ``experiments.cli.check_command_line``."""
    settings(cfg)


def _apply_shard(specs: list, shard) -> list:
    if shard is None:
        return specs
    i, n = shard
    return specs[i::n]


def benchmark_specs(s: Settings) -> list[TrialSpec]:
    p = s.preset
    specs = []
    rulesets = RULESETS if s.mode == "benchmark" else (s.mode,)
    for ruleset in rulesets:
        trials, studies = ((p["tuned"]["trials"], p["tuned"]["studies"]) if ruleset == "tuned"
                           else (1, p["at_defaults"]["seeds"]))
        specs += plan_trials(s.workloads, s.optimizers, ruleset, trials=trials,
                             studies=studies, seed=s.seed, budget=p["budget"],
                             eval_every=s.eval_every, stop_at_target=p["stop_at_target"])
    return specs


def run_trials(specs: Sequence[TrialSpec], store, workers: int = 1, out=sys.stderr,
               label: str = "benchmark") -> list[dict]:
    """Run ``specs``, skipping those already FINISHED in ``store``, with ``workers``
    processes; each trial is stored as it finishes; progress (trial i/N, the last result,
    ETA) on ``out``. Returns the rows in the order of ``specs``."""
    from experiments.progress import Progress

    done = store.finished()
    rows: list = [done.get(s.key()) for s in specs]
    skipped = sum(r is not None for r in rows)
    if skipped:
        print(f"Resuming benchmark {store.benchmark_id!r}: {skipped} of {len(specs)} trials "
              "already finished, skipped.", file=out)
    pending = [i for i, r in enumerate(rows) if r is None]
    with Progress(len(specs), label, unit="trial", initial=skipped, stream=out) as bar:
        def emit(i: int, row: dict) -> None:
            spec = specs[i]
            store.log(spec, row)
            rows[i] = row
            outcome = ("diverged" if row["diverged"] else
                       f"target@{row['steps_to_target']}" if row["steps_to_target"]
                       is not None else f"best={row['best_value']:.4g}")
            bar.update(last=f"{spec.label()}: {outcome} ({row['seconds']:.2f}s)")

        if pending:
            execute(specs, pending, workers, emit)
    return rows


def results_frame(rows: Sequence[dict]):
    """The trial table (``results.csv``): the documented columns first, then the rest."""
    import pandas as pd

    table = pd.DataFrame([{k: v for k, v in r.items() if k != "curve"} for r in rows])
    first = ["workload", "optimizer", "ruleset", "study", "trial", "steps_to_target",
             "seconds_to_target", "best_value", "diverged", "seconds", "eval_seconds"]
    return table[first + [c for c in table.columns if c not in first]]


def curves_frame(rows: Sequence[dict]):
    """Every trial's validation curve, one row per evaluation (``curves.csv``)."""
    import pandas as pd

    parts = []
    for r in rows:
        c = r["curve"]
        parts.append(pd.DataFrame({"workload": r["workload"], "optimizer": r["optimizer"],
                                   "ruleset": r["ruleset"], "study": r["study"],
                                   "trial": r["trial"], "step": c["step"],
                                   "seconds": c["seconds"], "value": c["value"]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def machine_line() -> str:
    import platform

    load = os.getloadavg()
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def _store(s: Settings):
    from experiments.benchmark.store import TrialStore

    return TrialStore(s.uri, s.benchmark_id, s.experiment)


def _params(s: Settings) -> dict:
    p = s.preset
    return {"preset": p["name"], "mode": s.mode, "seed": s.seed,
            "workloads": ",".join(w.name for w in s.workloads),
            "optimizers": ",".join(o.name for o in s.optimizers),
            "tuned.trials": p["tuned"]["trials"], "tuned.studies": p["tuned"]["studies"],
            "at_defaults.seeds": p["at_defaults"]["seeds"], "budget": p["budget"],
            "eval_every": s.eval_every, "stop_at_target": p["stop_at_target"]}


def run_benchmark(s: Settings, out=sys.stdout, err=sys.stderr) -> str | None:
    """Run (or resume) the trials, then score and report them; returns the leaderboard."""
    from datetime import datetime, timezone

    from experiments.benchmark import report

    store = _store(s)
    store.open_parent(_params(s))
    specs = benchmark_specs(s)
    started = time.time()
    cpu = os.times()
    rows = run_trials(_apply_shard(specs, s.shard), store, s.workers, out=err)
    if s.shard is not None:
        print(f"Shard {s.shard[0]}/{s.shard[1]} of benchmark {s.benchmark_id!r} done "
              f"({len(rows)} trials). Score all shards with the same command without shard.",
              file=out)
        return None
    results = results_frame(rows)
    now = os.times()
    cpu_s = (now.user - cpu.user) + (now.system - cpu.system) + \
        (now.children_user - cpu.children_user) + (now.children_system - cpu.children_system)
    p = s.preset
    header = (f"Benchmark `{s.benchmark_id}` ({p['name']} preset), "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine_line()}; "
              f"{len(rows)} trials, K = {p['tuned']['trials']} trials x "
              f"{p['tuned']['studies']} studies (tuned), {p['at_defaults']['seeds']} seeds "
              f"(defaults), step budget x {p['budget']}; training time summed over the "
              f"trials {results['seconds'].sum() / 60:.1f} min, evaluation "
              f"{results['eval_seconds'].sum() / 60:.1f} min; this command "
              f"{time.time() - started:.0f} s wall, {cpu_s:.0f} s CPU with {s.workers} "
              "worker(s).\n")
    board, summary = report.write_report(
        results, s.workloads, s.output_dir, exact_pairs=exact_pairs(s.optimizers),
        n_boot=s.bootstrap, seed=s.seed, r_max=s.r_max, level=s.level, header=header)
    curves_frame(rows).to_csv(s.output_dir / "curves.csv", index=False)
    if store.enabled:
        files = [s.output_dir / n for n in ("results.csv", "scores.csv", "claims.csv",
                                            "leaderboard.md", "curves.csv",
                                            "budget_curves.csv", "twin_mismatches.csv")]
        store.close_parent(summary, [f for f in files if f.exists()],
                           sorted((s.output_dir / "plots").glob("*.png")))
    print(board, file=out)
    print(f"Results in {s.output_dir}" + (f" and MLflow experiment '{s.experiment}'"
                                          if store.enabled else ""), file=out)
    return board


def calibrate(s: Settings, command: str, out=sys.stdout, err=sys.stderr) -> dict[str, float]:
    """Set each workload's target from the reference optimizers (docs/benchmark-protocol.md).

    Per workload: each reference is tuned with ``calibrate.trials`` quasi-random trials of
    the calibration's own stream at ``calibrate.budget`` of the step budget; its best
    setting (best validation value) is rerun with ``calibrate.seeds`` seeds of that
    stream; the target is the best of the references' medians of those seeds' best
    values. Written into the workload's YAML with its provenance.
    """
    from datetime import datetime, timezone

    import numpy as np

    c = s.preset["calibrate"]
    refs = select_optimizers(c["references"])
    store = _store(s)
    store.open_parent({**_params(s), "references": ",".join(o.name for o in refs)})
    targets = {}
    for w in s.workloads:
        free = Workload(**{**w.__dict__, "target": None})  # no target while calibrating
        search = plan_trials([free], refs, "calibrate", trials=c["trials"], studies=1,
                             seed=s.seed, budget=c["budget"], eval_every=s.eval_every,
                             stop_at_target=False)
        rows = run_trials(search, store, s.workers, out=err,
                          label=f"calibrate {w.name} search")
        reruns = []
        for ref in refs:
            mine = [(spec, r) for spec, r in zip(search, rows) if r["optimizer"] == ref.name]
            best_spec, best_row = mine[0]
            for spec, r in mine[1:]:
                if free.better(r["best_value"], best_row["best_value"]):
                    best_spec, best_row = spec, r
            seeds = plan_trials([free], [ref], "defaults", trials=1, studies=c["seeds"],
                                seed=s.seed, budget=c["budget"], eval_every=s.eval_every,
                                stop_at_target=False, stream="calibrate_seeds")
            for spec in seeds:
                spec.ruleset, spec.hp, spec.sampled = ("calibrate_seeds", best_spec.hp,
                                                       best_spec.sampled)
            reruns += seeds
        rows = run_trials(reruns, store, s.workers, out=err,
                          label=f"calibrate {w.name} seeds")
        medians = {ref.name: float(np.median([r["best_value"] for r in rows
                                              if r["optimizer"] == ref.name]))
                   for ref in refs}
        best = max(medians.values()) if w.maximize else min(medians.values())
        targets[w.name] = best
        steps = max(1, int(round(w.steps * c["budget"])))
        provenance = (f"calibrated {datetime.now(timezone.utc):%Y-%m-%d} by `{command}` "
                      "(rule: docs/benchmark-protocol.md, Targets): "
                      f"{', '.join(r.name for r in refs)} each tuned with {c['trials']} "
                      f"quasi-random trials of the calibration stream at {steps} steps "
                      f"({c['budget']:g} x the budget), best setting rerun with {c['seeds']} "
                      f"seeds; median best {w.metric}: "
                      + ", ".join(f"{k} {v:.4g}" for k, v in medians.items())
                      + "; target = the best of these")
        write_target(w, best, provenance)
        print(f"{w.name}: target {w.metric} {best:.4g} ("
              + ", ".join(f"{k} {v:.4g}" for k, v in medians.items()) + ")", file=out,
              flush=True)
    store.close_parent({f"target/{k}": v for k, v in targets.items()}, [], [])
    return targets


def main_entry(cfg) -> None:
    from experiments import tracking
    from experiments.cli import refuse

    try:
        s = settings(cfg)
    except BenchmarkError as e:
        refuse(str(e))
    if s.uri is not None:
        try:
            tracking.probe_store(s.uri)
        except tracking.TrackingUnavailable as e:
            refuse(str(e), prefix="Error")
    if s.mode == "calibrate":
        from experiments.hydra_job import task_overrides

        # where things are stored is no part of how a target was set
        local = ("tracking.", "benchmark_id=", "output_dir=", "workload_dir=", "workers=")
        kept = [o for o in task_overrides() if not o.startswith(local)]
        command = "python -m experiments.benchmark " + " ".join(kept)
        calibrate(s, command.strip())
    else:
        run_benchmark(s)


__all__ = ["MODES", "RULESETS", "OPTIMIZER_SETS", "Optimizer", "Settings", "settings",
           "check", "benchmark_specs", "run_trials", "run_benchmark", "calibrate",
           "main_entry", "results_frame", "curves_frame"]
