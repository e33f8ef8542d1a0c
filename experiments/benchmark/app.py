"""The benchmark's command once its settings are checked (``settings``): the run (or
resume), the calibration, and ``main_entry``, which ``__main__``'s Hydra app calls.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Sequence

from experiments.benchmark.files import write_csv
from experiments.benchmark.pool import WorkerLost, execute, sigterm_raises
from experiments.benchmark.settings import RULESETS, Settings, settings
from experiments.benchmark.trials import TrialSpec, plan_trials
from experiments.benchmark.workloads import (BenchmarkError, Workload, exact_pairs,
                                             select_optimizers, write_target)


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
    from experiments.core.progress import Progress

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
            execute(specs, pending, workers, emit,
                    log=lambda line: print(line, file=out, flush=True))
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
    """MLflow's runs, or with tracking off the journal in the output folder."""
    from experiments.benchmark.files import Journal
    from experiments.benchmark.store import TrialStore

    if s.uri is None:
        return Journal(s.output_dir, s.benchmark_id)
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
    """Run (or resume) the trials, then score and report them; returns the leaderboard.
    The output folder exists before the parent run; an error or a signal ends the parent
    run FAILED or KILLED (``TrialStore.ending_parent``)."""
    store = _store(s)
    try:
        s.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BenchmarkError(f"output_dir={s.output_dir} cannot be created: "
                             f"{err.strerror}") from None
    store.open_parent(_params(s))
    with store.ending_parent():
        return _run_benchmark(s, store, out, err)


def _run_benchmark(s: Settings, store, out, err) -> str | None:
    from datetime import datetime, timezone

    from experiments.benchmark import report

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
        n_boot=s.bootstrap, seed=s.seed, r_max=s.r_max, level=s.level, delta=s.delta,
        sims=s.power_sims, header=header)
    write_csv(curves_frame(rows), s.output_dir / "curves.csv", index=False)
    if store.enabled:
        files = [s.output_dir / n for n in ("results.csv", "scores.csv", "claims.csv",
                                            "leaderboard.md", "curves.csv",
                                            "budget_curves.csv", "twin_mismatches.csv")]
        store.close_parent(summary, [f for f in files if f.exists()],
                           sorted((s.output_dir / "plots").glob("*.png")))
    print(board, file=out)
    print(f"Results in {s.output_dir}" + (f" and MLflow experiment '{s.experiment}'"
                                          if store.enabled else ""), file=out)
    if store.enabled and store.parent_id:
        from experiments.core import tracking

        print(tracking.see_it(store.uri, run_id=store.parent_id), file=out)
    return board


def calibrate(s: Settings, command: str, out=sys.stdout, err=sys.stderr) -> dict[str, float]:
    """Set each workload's target from the reference optimizers (docs/benchmark-protocol.md).

    Per workload: each reference is tuned with ``calibrate.trials`` quasi-random trials of
    the calibration's own stream at ``calibrate.budget`` of the step budget; its best
    setting (best validation value) is rerun with ``calibrate.seeds`` seeds of that
    stream; the target is the best of the references' medians of those seeds' best
    values. Written into the workload's YAML with its provenance.
    """
    c = s.preset["calibrate"]
    refs = select_optimizers(c["references"])
    store = _store(s)
    store.open_parent({**_params(s), "references": ",".join(o.name for o in refs)})
    with store.ending_parent():
        return _calibrate(s, command, store, refs, out, err)


def _calibrate(s: Settings, command: str, store, refs, out, err) -> dict[str, float]:
    from datetime import datetime, timezone

    import numpy as np

    c = s.preset["calibrate"]
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
    """The command: refusals in one line (exit 2); a group whose worker died twice in one
    line (exit 1); SIGINT/SIGTERM stop the workers and end in one line (exit 130/143). In
    each case every finished trial is stored and the same command resumes."""
    from experiments.core import cli, tracking

    with cli.refusing():
        s = settings(cfg)
        if s.uri is not None:
            tracking.probe_store(s.uri)
    try:  # a refusal from inside the work (the output folder, a target) is one line too
        with cli.refusing():
            _main(s)
    except WorkerLost as err:
        cli.refuse(str(err), prefix="Error", code=cli.EXIT_FAILED)
    except KeyboardInterrupt as err:
        name = getattr(err, "signal_name", "SIGINT")
        cli.refuse(f"every finished trial of benchmark {s.benchmark_id!r} is stored; the same "
                   "command resumes it", prefix=f"Stopped by {name}",
                   code=cli.EXIT_SIGTERM if name == "SIGTERM" else cli.EXIT_SIGINT)


def _main(s: Settings) -> None:
    with sigterm_raises():
        if s.mode == "calibrate":
            from experiments.core.hydra_job import task_overrides

            # where things are stored is no part of how a target was set
            local = ("tracking.", "benchmark_id=", "output_dir=", "workload_dir=", "workers=")
            kept = [o for o in task_overrides() if not o.startswith(local)]
            command = "python -m experiments.benchmark " + " ".join(kept)
            calibrate(s, command.strip())
        else:
            run_benchmark(s)
