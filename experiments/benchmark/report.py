"""The benchmark's report: leaderboard and tables, pure functions of the trial table.

``write_report(results, workloads, out)`` writes ``results.csv``, ``scores.csv``,
``claims.csv``, ``leaderboard.md`` and ``plots/`` (drawn by
``experiments.benchmark.figures``: performance profiles in steps and seconds, budget curves,
learning-rate sensitivity, time to target per workload) and returns the leaderboard's
Markdown: the descriptive scores, then the claims' paired verdicts with their power
(``experiments.benchmark.claims``). ``python -m experiments.benchmark.report FOLDER --docs
DIR`` does the same from a stored run and writes its part of ``DIR/results.md``. Nothing
here trains or imports TensorFlow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from experiments.core import markdown
from experiments.benchmark import claims as claims_mod
from experiments.benchmark import scoring, verdicts
from experiments.benchmark.files import write_csv, write_text
from experiments.benchmark.figures import (budget_plot, profile_plot, sensitivity_plot,
                                           time_plot)


def _fmt_time(t: float) -> str:
    return "∞" if not math.isfinite(t) else f"{t:.0f}"


def leaderboard(scores: pd.DataFrame, results: pd.DataFrame,
                twins: pd.DataFrame | None, header: str = "", level: float = 0.95) -> str:
    """The Markdown leaderboard: per ruleset, scores with CIs and times per workload."""
    steps = scoring.times_table(results, "steps_to_target")
    lines = [header] if header else []
    for ruleset in dict.fromkeys(results["ruleset"]):
        block = scores.xs(ruleset, level="ruleset").sort_values(
            ["score_steps", "score_seconds"], ascending=False)
        times = steps.xs(ruleset, level="ruleset")
        workloads = list(times.columns)
        mine = results[results["ruleset"] == ruleset]
        reached = mine["steps_to_target"].notna().groupby(mine["optimizer"]).agg(["sum",
                                                                                 "count"])
        body = []
        for optimizer, s in block.iterrows():
            body.append([optimizer,
                         scoring.format_ci(s.score_steps, s.score_steps_low, s.score_steps_high),
                         scoring.format_ci(s.score_seconds, s.score_seconds_low,
                                           s.score_seconds_high),
                         "{}/{}".format(*reached.loc[optimizer]),
                         *(_fmt_time(times.loc[optimizer, w]) for w in workloads)])
        lines += [f"**{ruleset}** (score = area under ρ(τ) on τ ∈ [1, 4] / 3 against every "
                  f"optimizer of the table, {level:.0%} paired bootstrap CI over studies; "
                  "trials that reached their target; then steps to target per workload, "
                  "the median over studies of each study's fastest trial, ∞ = not reached)",
                  "", markdown.table(["optimizer", "score (steps)", "score (seconds)",
                                      "trials at target", *workloads], body), ""]
    if twins is not None and len(twins):
        body = [[r.pair, int(r.compared), int(r.mismatches)] for r in twins.itertuples()]
        lines += ["**Exact twins** (same rule, same sampled hyperparameters and seed: steps "
                  "to target must agree)", "",
                  markdown.table(["pair", "trials compared", "mismatches"], body), ""]
    return "\n".join(lines)


def design_checks(results: pd.DataFrame) -> dict:
    """The design figure the report prints: (workload, lecture rule, study) cells of the
    tuned ruleset that reached their target."""
    lecture = sorted({r for _, a, b in claims_mod.CLAIMS for r in (a, b)}
                     & set(results["optimizer"]))
    reached, cells = scoring.cells_at_target(results, lecture, "tuned")
    return {"cells_at_target": reached, "cells": cells}


def workload_table(results: pd.DataFrame, workloads: Sequence) -> str:
    """Per workload: metric, target, the run's budget and evaluation period, what a trial
    cost (training seconds; evaluation apart) and how many reached the target."""
    body = []
    for w in workloads:
        g = results[results["workload"] == w.name]
        if g.empty:
            continue
        q1, med, q3 = np.quantile(g["seconds"], [0.25, 0.5, 0.75])
        body.append([w.name, w.metric, f"{w.target:.4g}", int(g["budget_steps"].max()),
                     int(g["eval_every"].max()), w.batch_size,
                     f"{med:.2f} [{q1:.2f}, {q3:.2f}]", f"{g['eval_seconds'].median():.2f}",
                     f"{g['steps_to_target'].notna().sum()}/{len(g)}",
                     f"{g['diverged'].astype(bool).sum()}"])
    return markdown.table(["workload", "metric", "target", "step budget", "evaluation every",
                           "batch", "training seconds per trial, median [IQR]",
                           "evaluation seconds, median", "trials at target", "diverged"],
                          body)


def mnist1d_table(results: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> str:
    """Best validation accuracy on the MNIST-1D workloads per optimizer: defaults (mean over
    seeds, bootstrap 95 % CI) and tuned (best trial per study, mean and CI over studies and
    trials)."""
    block = results[results["workload"].str.startswith("mnist1d")]
    if block.empty:
        return ""
    rng = np.random.default_rng(seed)
    workloads = list(dict.fromkeys(block["workload"]))
    body = []
    for optimizer in dict.fromkeys(block["optimizer"]):
        row = [optimizer]
        for ruleset in ("defaults", "tuned"):
            for w in workloads:
                g = block[(block["optimizer"] == optimizer) & (block["workload"] == w)
                          & (block["ruleset"] == ruleset)]
                if g.empty:
                    row.append("–")
                    continue
                if ruleset == "defaults":
                    v = g["best_value"].to_numpy(float)
                else:
                    v = g.groupby("study")["best_value"].max().to_numpy(float)
                    if len(v) == 1:  # one study: the spread of the best of K draws
                        pool = g["best_value"].to_numpy(float)
                        k = len(pool)
                        draws = pool[rng.integers(0, k, (n_boot, k))].max(axis=1)
                        lo, hi = np.quantile(draws, [0.025, 0.975])
                        row.append(f"{v[0]:.3f} [{lo:.3f}, {hi:.3f}]")
                        continue
                boot = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1)
                lo, hi = np.quantile(boot, [0.025, 0.975])
                row.append(f"{v.mean():.3f} [{lo:.3f}, {hi:.3f}] (n={len(v)})")
        body.append(row)
    header = ["optimizer", *(f"{w} defaults" for w in workloads),
              *(f"{w} tuned" for w in workloads)]
    return markdown.table(header, body)


CLAIMS_INTRO = (
    "**Claims: the paired verdicts** (rules a and b alone, on the (workload, study) cells "
    "both ran. Per cell d = log min(T_a, B⁺) − log min(T_b, B⁺), T a study's fastest trial "
    "to the target, B⁺ the step budget + one evaluation period, so that a miss ranks after "
    "every hit; the time ratio is exp(mean d) with Student's t interval over the cells. "
    "A workload with fewer than {min_s} shared studies, or that both rules missed in every "
    "study, is left out and said so below. The per-trial speed ratio is the ratio of steps "
    "a trial needs that would give this time ratio in the simulated design (censoring "
    "pulls the time ratio toward 1). P(a better) is the composite order: a hit beats a "
    "miss, the earlier hit wins, two misses compare their best validation values. "
    "Verdicts: holds / reversed / equivalent within ±{delta:.0%} / inconclusive; "
    "docs/benchmark-protocol.md, \"Verdicts\")")


def claims_section(claims: pd.DataFrame, level: float, delta: float) -> str:
    """The claims' Markdown: the table, then what each used per workload."""
    if claims.empty:
        return ""
    text = "\n" + CLAIMS_INTRO.format(min_s=verdicts.MIN_STUDIES, delta=delta) + "\n\n"
    text += claims_mod.claims_table(claims, level)
    text += ("\n**What each claim used per workload** (shared studies and the studies "
             "with a hit, a / b; or why the workload was left out)\n\n"
             + claims_mod.information_table(claims) + "\n")
    return text


def write_report(results: pd.DataFrame, workloads: Sequence, out: Path, *,
                 exact_pairs: Mapping[str, str], n_boot: int = 1000, seed: int = 0,
                 r_max: float = scoring.R_MAX, level: float = 0.95, delta: float = 0.15,
                 sims: int = 1000, header: str = "") -> tuple[str, dict]:
    """Everything the benchmark writes from its trial table; returns (leaderboard, the
    summary metrics for the parent run)."""
    verdicts.check_table(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    write_csv(results, out / "results.csv", index=False)
    draws = scoring.bootstrap_draws(results, n_boot=n_boot, seed=seed, r_max=r_max)
    scores = scoring.bootstrap_scores(results, r_max=r_max, level=level, draws=draws)
    write_csv(scores, out / "scores.csv")
    maximize = {w.name: w.maximize for w in workloads}
    claims = claims_mod.claims_frame(results, maximize, level, delta, sims, seed)
    write_csv(claims, out / "claims.csv", index=False)
    summary, bad = scoring.twin_check(results, exact_pairs)
    if len(bad):
        write_csv(bad, out / "twin_mismatches.csv", index=False)
    checks = design_checks(results)
    board = leaderboard(scores, results, summary, header, level)
    board += (f"\n**Design check**: {checks['cells_at_target']} of {checks['cells']} "
              "(workload, lecture rule, study) cells of the tuned ruleset reached their "
              "target.\n")
    board += claims_section(claims, level, delta)
    board += "\n**Workloads**\n\n" + workload_table(results, workloads) + "\n"
    table = mnist1d_table(results, seed=seed)
    if table:
        board += ("\n**MNIST-1D: best validation accuracy** (defaults: mean over seeds; "
                  "tuned: best trial of a study; 95 % bootstrap CI)\n\n" + table + "\n")
    write_text(out / "leaderboard.md", board)
    targets = {w.name: w.target for w in workloads}
    profile_plot(results, out / "plots" / "profiles.png", r_max)
    time_plot(results, out / "plots" / "time_to_target.png")
    tuned = results[results["ruleset"] == "tuned"]
    if len(tuned):
        curves = scoring.budget_curves(results, maximize, seed=seed)
        write_csv(curves, out / "budget_curves.csv", index=False)
        budget_plot(curves, out / "plots" / "budget_curves.png", targets)
        sensitivity_plot(tuned, out / "plots" / "lr_sensitivity.png", targets,
                         maximize)
    metrics = {**checks, **claims_mod.metrics(claims)}
    for (ruleset, optimizer), row in scores.iterrows():
        metrics.update({f"{ruleset}/{optimizer}/{k}": v for k, v in row.items()})
    return board, metrics


#: the report's part of the results page: what lies outside (commentary) is kept
START, END = "<!-- report:start -->", "<!-- report:end -->"


def results_page(board: str, plots: Sequence[str], folder_name: str, old: str = "") -> str:
    """The docs page of a run (``docs/benchmark/results.md``): its leaderboard, claims and
    figures between ``START`` and ``END``, as ``python -m experiments.benchmark.report
    FOLDER --docs DIR`` wrote them. An ``old`` page keeps what lies outside the markers
    (hand-written commentary); without markers the page is written anew."""
    figures = "\n\n".join(f"![{Path(p).stem.replace('_', ' ')}]({Path(p).name})"
                           for p in plots)
    part = (f"{START}\n\nWritten by `python -m experiments.benchmark.report {folder_name} "
            "--docs docs/benchmark` from the run's `results.csv` (everything down to the "
            "figures; edit outside this part only). The first line says when and on what "
            "the run ran: seconds are this machine's under the load it names (other jobs "
            "shared the cores); steps do not depend on it.\n\n"
            + board + "\n**Figures**\n\n" + figures + "\n\n*Made from the stored trials "
            "of `python -m experiments.benchmark` by this report; `python -m "
            "experiments.gallery benchmark` makes the same figures from the tracking store "
            f"(training what is missing).*\n\n{END}")
    if START in old and END in old:
        head, rest = old.split(START, 1)
        return head + part + rest.split(END, 1)[1]
    return "# Benchmark results\n\n" + part + "\n"


def main(argv=None) -> None:
    """``python -m experiments.benchmark.report FOLDER [--docs DIR]``: rewrite the
    leaderboard, scores, claims and plots from a stored run's ``results.csv`` (the
    workloads' targets read from ``conf/workload``), optionally writing the results page
    and its figures to ``DIR`` (``docs/benchmark``: ``results.md`` and the plots)."""
    import argparse
    import shutil

    from experiments.core.cli import refusing
    from experiments.benchmark.workloads import exact_pairs, load_workload, select_optimizers

    parser = argparse.ArgumentParser(prog="python -m experiments.benchmark.report",
                                     description=main.__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a benchmark's output_dir")
    parser.add_argument("--docs", type=Path, default=None,
                        help="write results.md and the plots here (e.g. docs/benchmark)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delta", type=float, default=0.15,
                        help="equivalence margin: equivalent when the ratio's interval lies "
                             "in [1/(1+delta), 1+delta]")
    parser.add_argument("--sims", type=int, default=1000,
                        help="simulated tables per true ratio for the power (0: none)")
    args = parser.parse_args(argv)
    with refusing():
        path = args.folder / "results.csv"
        if not path.is_file():
            raise verdicts.ResultsError(f"{path} does not exist: give the output_dir of a "
                                        "benchmark run")
        if not 0 < args.delta < 1:
            raise verdicts.ResultsError(f"--delta={args.delta} must lie in (0, 1)")
        results = pd.read_csv(path)
        verdicts.check_table(results)
        workloads = [load_workload(w) for w in dict.fromkeys(results["workload"])]
        options = select_optimizers(list(dict.fromkeys(results["optimizer"])))
        old = args.folder / "leaderboard.md"
        header = old.read_text().split("\n", 1)[0] + "\n" if old.is_file() else ""
        board, _ = write_report(results, workloads, args.folder,
                                exact_pairs=exact_pairs(options), n_boot=args.bootstrap,
                                seed=args.seed, delta=args.delta, sims=args.sims,
                                header=header)
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        plots = sorted((args.folder / "plots").glob("*.png"))
        for png in plots:
            shutil.copy(png, args.docs / png.name)
        page = args.docs / "results.md"
        old = page.read_text() if page.is_file() else ""
        page.write_text(results_page(board, [p.name for p in plots], args.folder.name, old))
    print(board)


if __name__ == "__main__":
    main()
