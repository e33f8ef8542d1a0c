"""The benchmark's report: leaderboard and tables, pure functions of the trial table.

``write_report(results, workloads, out)`` writes ``results.csv``, ``scores.csv``,
``claims.csv``, ``leaderboard.md`` and ``plots/`` (drawn by
``experiments.benchmark.figures``: performance profiles in steps and seconds, budget curves,
learning-rate sensitivity, time to target per workload) and returns the leaderboard's
Markdown. Nothing here trains or imports TensorFlow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from experiments.core import markdown
from experiments.benchmark import scoring
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


#: The lecture's claims as two-rule comparisons: (claim, rule a, rule b): "a beats b".
CLAIMS = (
    ("momentum accelerates gradient descent", "momentum", "sgd"),
    ("Nesterov's look-ahead improves on momentum", "nesterov", "momentum"),
    ("per-weight rates (AdaGrad) beat one global rate", "adagrad", "sgd"),
    ("RMSProp fixes AdaGrad's premature decay", "rmsprop", "adagrad"),
    ("Adam (RMSProp + momentum) improves on RMSProp", "adam", "rmsprop"),
    ("Adam improves on momentum", "adam", "momentum"),
)


#: Today's optimizers against the lecture's Adam and each other, read the same way: the
#: claims their papers make (Loshchilov & Hutter 2019; Defazio et al. 2024; Jordan et al.
#: 2024; Chen et al. 2023), each against AdamW, the baseline those papers beat.
NEWER_CLAIMS = (
    ("decoupled weight decay (AdamW) improves on Adam", "adamw", "adam"),
    ("Schedule-Free improves on AdamW", "schedule_free_adamw", "adamw"),
    ("Muon improves on AdamW", "muon", "adamw"),
    ("Lion improves on AdamW", "lion", "adamw"),
)


def claims_frame(results: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95, r_max: float = scoring.R_MAX,
                 claims: Sequence = CLAIMS) -> pd.DataFrame:
    """Every claim whose two rules ran, per ruleset: ``scoring.compare`` of the two."""
    have = set(results["optimizer"])
    rows = []
    for claim, a, b in claims:
        if a not in have or b not in have:
            continue
        for ruleset in dict.fromkeys(results["ruleset"]):
            c = scoring.compare(results, a, b, ruleset, n_boot, seed, level, r_max)
            c.pop("per_workload")
            rows.append({"claim": claim, **c})
    return pd.DataFrame(rows)


def claims_table(claims: pd.DataFrame, level: float = 0.95, read_at_once: int | None = None,
                 title: str = "lecture claim") -> str:
    """The claims as Markdown, with how many intervals are read at once (``read_at_once``,
    default: this table's)."""
    if claims.empty:
        return ""
    body = []
    for r in claims.itertuples():
        verdict = {f"{r.a} faster": f"holds ({r.a} faster)",
                   f"{r.b} faster": f"reversed ({r.b} faster)"}.get(r.verdict, r.verdict)
        body.append([r.claim, r.ruleset, f"{r.a} / {r.b}",
                     f"{r.ratio:.2f} [{r.ratio_low:.2f}, {r.ratio_high:.2f}]",
                     f"{r.score_difference:+.2f} [{r.difference_low:+.2f}, "
                     f"{r.difference_high:+.2f}]", verdict,
                     f"{r.detectable:.2f}" if math.isfinite(r.detectable) else "–"])
    n = read_at_once or len(claims)
    return (markdown.table([title, "ruleset", "rules", "time ratio (geometric mean)",
                            "two-rule score difference", "verdict",
                            "smallest detectable ratio"], body)
            + f"\n\n{n} intervals are read at once: at {level:.0%} each, about "
              f"{n * (1 - level):.1f} of them would exclude the truth by chance alone "
              f"(Bonferroni: read each at {1 - (1 - level) / n:.1%} to keep the family at "
              f"{level:.0%}).\n")


def design_checks(results: pd.DataFrame, scores: pd.DataFrame) -> dict:
    """The issue's design figures: (workload, lecture rule, study) cells at target in the
    tuned ruleset, and the median width of the lecture rules' tuned score intervals."""
    lecture = sorted({r for _, a, b in CLAIMS for r in (a, b)} & set(results["optimizer"]))
    reached, cells = scoring.cells_at_target(results, lecture, "tuned")
    widths = []
    if "tuned" in scores.index.get_level_values("ruleset"):
        tuned = scores.xs("tuned", level="ruleset")
        tuned = tuned[tuned.index.isin(lecture)]
        widths = (tuned["score_steps_high"] - tuned["score_steps_low"]).to_list()
    return {"cells_at_target": reached, "cells": cells,
            "median_interval_width": float(np.median(widths)) if widths else float("nan")}


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


def write_report(results: pd.DataFrame, workloads: Sequence, out: Path, *,
                 exact_pairs: Mapping[str, str], n_boot: int = 1000, seed: int = 0,
                 r_max: float = scoring.R_MAX, level: float = 0.95,
                 header: str = "") -> tuple[str, dict]:
    """Everything the benchmark writes from its trial table; returns (leaderboard, the
    summary metrics for the parent run)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    write_csv(results, out / "results.csv", index=False)
    draws = scoring.bootstrap_draws(results, n_boot=n_boot, seed=seed, r_max=r_max)
    scores = scoring.bootstrap_scores(results, r_max=r_max, level=level, draws=draws)
    write_csv(scores, out / "scores.csv")
    claims = claims_frame(results, n_boot, seed, level, r_max)
    newer = claims_frame(results, n_boot, seed, level, r_max, NEWER_CLAIMS)
    write_csv(pd.concat([claims.assign(family="lecture"), newer.assign(family="newer")],
                        ignore_index=True), out / "claims.csv", index=False)
    read_at_once = len(claims) + len(newer)
    summary, bad = scoring.twin_check(results, exact_pairs)
    if len(bad):
        write_csv(bad, out / "twin_mismatches.csv", index=False)
    checks = design_checks(results, scores)
    board = leaderboard(scores, results, summary, header, level)
    board += (f"\n**Design checks**: {checks['cells_at_target']} of {checks['cells']} "
              "(workload, lecture rule, study) cells of the tuned ruleset reached their "
              f"target; median width of the lecture rules' tuned score intervals "
              f"{checks['median_interval_width']:.2f}.\n")
    if len(claims):
        board += ("\n**The lecture's claims** (the two rules alone: per workload the time "
                  "ratio a/b in steps, a miss censored at the step budget, summarised as the "
                  "geometric mean; beside it the difference of the two-rule profile scores; "
                  f"{level:.0%} paired bootstrap intervals; a ratio interval holding 1 is "
                  "inconclusive; the smallest detectable ratio is what this design finds "
                  "with 80 % power)\n\n" + claims_table(claims, level, read_at_once))
    if len(newer):
        board += ("\n**Today's optimizers** (their papers' claims, read as the lecture's: "
                  "each against AdamW, the baseline they report beating; every rule with the "
                  "same tuning budget, its own search space)\n\n"
                  + claims_table(newer, level, read_at_once, title="claim"))
    board += "\n**Workloads**\n\n" + workload_table(results, workloads) + "\n"
    table = mnist1d_table(results, seed=seed)
    if table:
        board += ("\n**MNIST-1D: best validation accuracy** (defaults: mean over seeds; "
                  "tuned: best trial of a study; 95 % bootstrap CI)\n\n" + table + "\n")
    write_text(out / "leaderboard.md", board)
    targets = {w.name: w.target for w in workloads}
    maximize = {w.name: w.maximize for w in workloads}
    profile_plot(results, out / "plots" / "profiles.png", r_max)
    time_plot(results, out / "plots" / "time_to_target.png")
    tuned = results[results["ruleset"] == "tuned"]
    if len(tuned):
        curves = scoring.budget_curves(results, maximize, seed=seed)
        write_csv(curves, out / "budget_curves.csv", index=False)
        budget_plot(curves, out / "plots" / "budget_curves.png", targets)
        sensitivity_plot(tuned, out / "plots" / "lr_sensitivity.png", targets,
                         maximize)
    metrics = {**checks}
    for (ruleset, optimizer), row in scores.iterrows():
        metrics.update({f"{ruleset}/{optimizer}/{k}": v for k, v in row.items()})
    for r in (*claims.itertuples(), *newer.itertuples()):
        metrics[f"claim/{r.ruleset}/{r.a}_vs_{r.b}/ratio"] = r.ratio
    return board, metrics


def main(argv=None) -> None:
    """``python -m experiments.benchmark.report FOLDER [--docs DIR]``: rewrite the
    leaderboard, scores, claims and plots from a stored run's ``results.csv`` (the
    workloads' targets read from ``conf/workload``), optionally copying the plots to
    ``DIR`` (the README's figures live in ``docs/benchmark``)."""
    import argparse
    import shutil
    import sys

    from experiments.benchmark.workloads import exact_pairs, load_workload, select_optimizers

    parser = argparse.ArgumentParser(prog="python -m experiments.benchmark.report",
                                     description=main.__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a benchmark's output_dir")
    parser.add_argument("--docs", type=Path, default=None,
                        help="copy plots/*.png here (e.g. docs/benchmark)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = args.folder / "results.csv"
    if not path.is_file():
        print(f"Error: {path} does not exist: give the output_dir of a benchmark run",
              file=sys.stderr)
        sys.exit(2)
    results = pd.read_csv(path)
    workloads = [load_workload(w) for w in dict.fromkeys(results["workload"])]
    options = select_optimizers(list(dict.fromkeys(results["optimizer"])))
    old = (args.folder / "leaderboard.md")
    header = old.read_text().split("\n", 1)[0] + "\n" if old.is_file() else ""
    board, _ = write_report(results, workloads, args.folder, exact_pairs=exact_pairs(options),
                            n_boot=args.bootstrap, seed=args.seed, header=header)
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        for png in sorted((args.folder / "plots").glob("*.png")):
            shutil.copy(png, args.docs / png.name)
    print(board)


if __name__ == "__main__":
    main()
