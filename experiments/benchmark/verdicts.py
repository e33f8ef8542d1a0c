"""Two rules compared from their trials alone: the paired, censoring-aware verdicts.

The estimand and its test are argued in ``docs/benchmark-protocol.md`` ("Verdicts"). In
short, per (workload, study) cell that **both** rules ran (on the trials both ran):

* each rule's study time T = its fastest trial to the target (floored at one evaluation
  period: a hit at the step-0 evaluation counts as one period), ∞ if none hit;
* d = log min(T_a, B⁺) − log min(T_b, B⁺), with B⁺ = the step budget + one evaluation
  period: a miss ranks after every hit, a hit at the last evaluation included;
* a workload with fewer than ``MIN_STUDIES`` shared studies is left out ("too few
  studies"), one that both rules miss in every shared study is left out ("no
  information": it says nothing about speed and would pull every ratio to 1);
* the effect is the mean of d over the remaining cells, with Student's t interval
  (``experiments.benchmark.stats``), reported as exp(mean): the **time ratio a/b**.

Beside it the **composite order** per cell (a hit beats a miss, the earlier hit wins, two
misses compare their best validation values; ties count half) summarised as the win
probability P(a better than b), and, for whole-curve runs, the **best validation value**
within the budget per cell, standardised per workload, with its own interval and test.
``family`` turns the claims' p-values into verdicts with Holm's correction.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from experiments.benchmark import stats
from experiments.core.checks import Refusal

#: a workload needs this many studies that both rules ran to count in a claim
MIN_STUDIES = 5
NEEDED = ("workload", "optimizer", "ruleset", "study", "trial", "steps_to_target",
          "best_value", "budget_steps", "eval_every")


class ResultsError(Refusal, ValueError):
    """A trial table the verdicts cannot read: a missing column or a NaN where a number
    must be. One line, naming the column and the first bad row."""

    prefix = "Error in the results table"


def check_table(results: pd.DataFrame) -> None:
    """``ResultsError`` for a missing column or a NaN / non-positive budget, evaluation
    period, study, trial or target (``target`` where the table has it)."""
    missing = [c for c in NEEDED if c not in results.columns]
    if missing:
        raise ResultsError(f"column(s) {', '.join(missing)} missing; a benchmark's "
                           f"results.csv has {', '.join(NEEDED)}")
    numeric = ["budget_steps", "eval_every", "study", "trial"]
    numeric += ["target"] if "target" in results.columns else []
    for col in numeric:
        v = pd.to_numeric(results[col], errors="coerce").to_numpy(float)
        bad = ~np.isfinite(v) | ((v <= 0) if col in ("budget_steps", "eval_every") else False)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = results.iloc[i]
            raise ResultsError(
                f"{col}={row[col]} in row {i} ({row['workload']}, {row['optimizer']}, "
                f"{row['ruleset']}, study {row['study']}): it must be a finite number"
                + (" > 0" if col in ("budget_steps", "eval_every") else ""))


def paired_cells(results: pd.DataFrame, a: str, b: str, ruleset: str,
                 maximize: Mapping[str, bool]) -> dict[str, dict]:
    """Per workload the cells both rules ran: ``studies``, ``t`` (2 x S study times in
    steps, ∞ = missed), ``best`` (2 x S best values, larger = better after the sign of
    ``maximize``), ``bplus`` (budget + one evaluation period), ``every``, and the studies
    only one rule ran (``a_only``, ``b_only``)."""
    check_table(results)
    mine = results[(results["ruleset"] == ruleset) & results["optimizer"].isin([a, b])]
    out = {}
    for w, g in mine.groupby("workload", sort=False):
        keys = ["study", "trial"]
        ga = g[g["optimizer"] == a].set_index(keys)
        gb = g[g["optimizer"] == b].set_index(keys)
        runs_a = set(ga.index.get_level_values(0))
        runs_b = set(gb.index.get_level_values(0))
        both = ga.index.intersection(gb.index)
        sign = 1.0 if maximize.get(w, True) else -1.0
        every = float(g["eval_every"].max())
        parts = []
        for rows in (ga.loc[both], gb.loc[both]):
            steps = rows["steps_to_target"].to_numpy(float)
            floor = rows["eval_every"].to_numpy(float)
            time = np.where(np.isfinite(steps), np.maximum(steps, floor), np.inf)
            best = sign * rows["best_value"].to_numpy(float)
            frame = pd.DataFrame({"study": rows.index.get_level_values(0), "t": time,
                                  "best": np.where(np.isfinite(best), best, -np.inf)})
            parts.append(frame.groupby("study").agg(t=("t", "min"), best=("best", "max")))
        studies = list(parts[0].index)
        out[w] = {"studies": studies,
                  "t": np.stack([p["t"].to_numpy(float) for p in parts]),
                  "best": np.stack([p["best"].to_numpy(float) for p in parts]),
                  "bplus": float(g["budget_steps"].max()) + every, "every": every,
                  "a_only": sorted(runs_a - set(studies)),
                  "b_only": sorted(runs_b - set(studies))}
    return out


def log_time_differences(t: np.ndarray, bplus) -> np.ndarray:
    """d = log min(T_a, B⁺) − log min(T_b, B⁺) from times ``(..., 2, S)`` (``bplus``
    broadcast against them)."""
    capped = np.log(np.minimum(t, bplus))
    return capped[..., 0, :] - capped[..., 1, :]


def composite_wins(t: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Per cell 1 if a is better than b in the composite order, 0.5 for a tie, else 0:
    a hit beats a miss, the earlier hit wins, two misses compare their best values."""
    ta, tb = t[0], t[1]
    hit_a, hit_b = np.isfinite(ta), np.isfinite(tb)
    with np.errstate(invalid="ignore"):
        by_time = np.sign(np.where(hit_a & hit_b, tb - ta, 0.0))
        by_best = np.sign(best[0] - best[1])
    by_best = np.where(np.isfinite(by_best), by_best, 0.0)  # both without a value
    s = np.where(hit_a & ~hit_b, 1.0, np.where(~hit_a & hit_b, -1.0,
                                               np.where(hit_a & hit_b, by_time, by_best)))
    return (s + 1.0) / 2.0


def compare(results: pd.DataFrame, a: str, b: str, ruleset: str,
            maximize: Mapping[str, bool], level: float = 0.95, delta: float = 0.15,
            whole_curve: bool = False) -> dict:
    """Rule ``a`` against ``b`` in ``ruleset``: the effect, its interval and p-values
    (verdicts come from ``family``, which corrects them together).

    Returns ``ratio`` (exp of the mean log time difference), ``ratio_low``/``high``,
    ``p``, ``p_eq`` (equivalence within ±``delta``), ``cells``, ``nonzero``, ``status``
    ("ok", "too few studies", "no information"), ``why`` (the reason, when not ok),
    ``information`` (per workload: "used (S studies, h_a/h_b hits)" or why not), the win
    probability (``win``, ``win_low``, ``win_high``) and, for ``whole_curve``, the
    standardised best-value difference (``best``, ``best_low``, ``best_high``,
    ``p_best``).
    """
    cells = paired_cells(results, a, b, ruleset, maximize)
    used, info, d_parts, wins, bests, few = [], {}, [], [], [], []
    for w, c in cells.items():
        s = len(c["studies"])
        hits = np.isfinite(c["t"]).sum(axis=1)
        missing = "".join(f"; {r} lacks {len(o)} of the studies the other ran"
                          for r, o in ((b, c["a_only"]), (a, c["b_only"])) if o)
        if s < MIN_STUDIES:
            info[w] = f"too few studies ({s} shared, {MIN_STUDIES} needed{missing})"
            few.append(w)
            continue
        wins.append(composite_wins(c["t"], c["best"]))
        if whole_curve:
            spread = np.std(c["best"][np.isfinite(c["best"])])
            diff = c["best"][0] - c["best"][1]
            ok = np.isfinite(diff)
            bests.append(diff[ok] / spread if spread > 0 else np.zeros(ok.sum()))
        if hits.sum() == 0:
            info[w] = f"no information (both rules missed all {s} studies{missing})"
            continue
        info[w] = f"used ({s} studies; hits {hits[0]}/{hits[1]}{missing})"
        used.append(w)
        d_parts.append(log_time_differences(c["t"], c["bplus"]))
    d = np.concatenate(d_parts) if d_parts else np.zeros(0)
    margin = math.log1p(delta)
    r = stats.paired_t(d, level=level, margin=margin) if len(d) else None
    out = {"a": a, "b": b, "ruleset": ruleset, "cells": int(len(d)), "information": info,
           "used": used}
    if r is None or len(d) < 2:
        why = ("too few studies" if few and not used else "no information")
        out.update(status=why, why=(f"no workload with {MIN_STUDIES} shared studies"
                                    if why == "too few studies" else
                                    "both rules missed every study of every workload"),
                   ratio=math.nan, ratio_low=math.nan, ratio_high=math.nan, p=math.nan,
                   p_eq=math.nan, nonzero=0, mean_log=math.nan)
    else:
        out.update(status="ok", why="", ratio=math.exp(r["mean"]),
                   ratio_low=math.exp(r["low"]), ratio_high=math.exp(r["high"]),
                   p=float(r["p"]), p_eq=float(r["p_eq"]), nonzero=int(r["nonzero"]),
                   mean_log=float(r["mean"]))
    win = np.concatenate(wins) if wins else np.zeros(0)
    rw = stats.paired_t(win, level=level)
    out.update(win=float(rw["mean"]), win_low=float(np.clip(rw["low"], 0.0, 1.0)),
               win_high=float(np.clip(rw["high"], 0.0, 1.0)), win_cells=int(len(win)))
    if whole_curve:
        best = np.concatenate(bests) if bests else np.zeros(0)
        rb = stats.paired_t(best, level=level)
        out.update(best=float(rb["mean"]), best_low=float(rb["low"]),
                   best_high=float(rb["high"]), p_best=float(rb["p"]))
    return out


def family(claims: list[dict], alpha: float = 0.05, delta: float = 0.15) -> list[dict]:
    """Verdicts for a family of ``compare`` results, corrected together (Holm).

    A claim reads "holds" / "reversed" when its Holm-adjusted p ≤ ``alpha`` (a faster /
    slower), else "equivalent" when its Holm-adjusted equivalence p ≤ ``alpha`` (the
    interval inside [1/(1+δ), 1+δ]), else "inconclusive". A direction needs, besides, a
    sign-flip floor (``stats.sign_floor``) at most α/m, m the claims that could be
    tested: a claim that is not equivalent and whose design cannot reach that level reads
    "too few studies", as does one without enough shared studies. ``level`` is the smallest family level at which the
    verdict holds (the adjusted p that decided; for inconclusive the smaller of the two
    adjusted p-values).
    Adds ``verdict``, ``level``, ``p_holm``, ``p_eq_holm``, ``alpha``, ``m``.
    """
    testable = [c["status"] == "ok" for c in claims]
    m = sum(testable)
    p = stats.holm([c["p"] if ok else np.nan for c, ok in zip(claims, testable)])
    p_eq = stats.holm([c["p_eq"] if ok else np.nan for c, ok in zip(claims, testable)])
    has_best = ["p_best" in c for c in claims]
    p_best = stats.holm([c.get("p_best", np.nan) for c in claims])
    out = []
    for c, ok, ph, pe, pb, hb in zip(claims, testable, p, p_eq, p_best, has_best):
        c = {**c, "p_holm": ph, "p_eq_holm": pe, "alpha": alpha, "m": m, "delta": delta}
        if hb:
            c["best_verdict"] = ("inconclusive" if not (pb <= alpha) else
                                 "holds" if c["best"] > 0 else "reversed")
            c["p_best_holm"] = pb
        floor_ok = ok and stats.sign_floor(c["nonzero"]) <= alpha / m
        if not ok:
            c.update(verdict=c["status"], level=math.nan)
        elif ph <= alpha and floor_ok:
            c.update(verdict="holds" if c["mean_log"] < 0 else "reversed", level=ph)
        elif pe <= alpha and stats.sign_floor(c["cells"]) <= alpha / m:
            c.update(verdict="equivalent", level=pe)
        elif not floor_ok:
            c.update(verdict="too few studies", level=math.nan,
                     why=f"{c['nonzero']} cells with a difference: no test on so few "
                         f"reaches the family's first Holm level {alpha / m:.2g}")
        else:
            c.update(verdict="inconclusive", level=min(ph, pe))
        out.append(c)
    return out
