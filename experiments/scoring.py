"""Scores of the benchmark: pure functions of its trial table (no models, no TensorFlow).

``python -m experiments.benchmark`` writes one row per trial (``results.csv``: workload,
optimizer, ruleset, study, trial, steps_to_target, seconds_to_target, best_value, diverged,
the hyperparameters, ...); everything here reads such a table and nothing else, so it can
be tested on tables written by hand (AlgoPerf keeps its scorer apart from its runner in
the same way: ``scoring/performance_profile.py``).

Time to target of one optimizer on one workload (AlgoPerf's external-tuning rule)
----------------------------------------------------------------------------------
* A **study** is K trials (K sampled hyperparameter points; in the defaults ruleset one
  trial: the defaults). The study's time is that of its fastest trial that reached the
  target, **provided that at least m of its K trials reached it** (else ∞), with
  ``m = ceil(min_fraction · K)``, at least 1. AlgoPerf's scorer asks for 3 of 5
  (``ALGOPERF_MIN_FRACTION = 0.6``: a search space that finds the target once by luck
  does not count), with search spaces its submitters narrow down. The registry's spaces
  are deliberately wide and workload-agnostic (5 decades of learning rate), so the lab's
  default is ``min_fraction = 0``, m = 1: the best of K draws, as in Choi et al. 2019 and
  Sivaprasad et al. 2020; how many draws succeed is reported beside the score.
* The workload's time is the **median over studies** (∞ when half or more of them are ∞:
  ``numpy.median`` of a list with ∞ in its upper half).

Performance profile and score
-----------------------------
* ``r = t / t_best`` per workload, ``t_best`` the best time of any optimizer in the same
  ruleset (a workload no optimizer reached gives everyone r = ∞; it still counts in the
  denominator, so every score is out of the same W workloads).
* ρ(τ) = the fraction of workloads with r ≤ τ; score = ∫₁^{r_max} ρ(τ) dτ / (r_max − 1),
  with r_max = 4 (AlgoPerf). A step function integrates exactly:
  score = mean over workloads of max(0, r_max − r) / (r_max − 1): 1 for the best
  everywhere, 0 for never within 4× of the best.
* Both in optimizer steps (machine-independent) and in seconds (this machine).

Uncertainty
-----------
``bootstrap_scores`` resamples, independently for every (workload, optimizer), the
studies with replacement and within each study its trials with replacement, recomputes
every time, ratio and score, and reports the 2.5 % and 97.5 % percentiles. With one study
(the ``default`` preset) the spread is the luck of the hyperparameter draw within it.

Budget curves
-------------
``budget_curve``: the expected best validation value after k = 1..K trials drawn from the
trial pool (with replacement, bootstrapped), with a 95 % band: how much tuning each rule
needs (Sivaprasad et al. 2020; Schmidt et al. 2021).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

R_MAX = 4.0
ALGOPERF_MIN_FRACTION = 0.6  # 3 of 5
MIN_FRACTION = 0.0  # this lab's default: one trial of the K is enough (see below)
KEYS = ("workload", "optimizer", "ruleset")


def min_reached(k: int, min_fraction: float = MIN_FRACTION) -> int:
    """How many of a study's ``k`` trials must reach the target: ceil(fraction · k), ≥ 1."""
    return max(1, math.ceil(min_fraction * k - 1e-9))


def study_time(times: Iterable[float], min_fraction: float = MIN_FRACTION) -> float:
    """A study's time to target: its fastest trial's, if ≥ m of its trials reached it.

    ``times`` has one entry per trial, ∞ (or NaN) for a trial that never reached it.
    """
    t = np.asarray(list(times), float)
    t = np.where(np.isnan(t), np.inf, t)
    if len(t) == 0 or np.isfinite(t).sum() < min_reached(len(t), min_fraction):
        return math.inf
    return float(t.min())


def workload_time(studies: Iterable[Iterable[float]], min_fraction: float = MIN_FRACTION) -> float:
    """The median over studies of ``study_time`` (∞ when half or more are ∞)."""
    values = [study_time(s, min_fraction) for s in studies]
    return float(np.median(values)) if values else math.inf


def _studies(group: pd.DataFrame, col: str) -> list[np.ndarray]:
    return [g.sort_values("trial")[col].to_numpy(float) for _, g in group.groupby("study")]


def times_table(results: pd.DataFrame, col: str = "steps_to_target",
                min_fraction: float = MIN_FRACTION) -> pd.DataFrame:
    """Time to target per (ruleset, optimizer) row and workload column (∞: not reached)."""
    rows = []
    for (workload, optimizer, ruleset), group in results.groupby(list(KEYS), sort=False):
        rows.append({"ruleset": ruleset, "optimizer": optimizer, "workload": workload,
                     "time": workload_time(_studies(group, col), min_fraction)})
    table = pd.DataFrame(rows).pivot_table(index=["ruleset", "optimizer"], columns="workload",
                                           values="time", aggfunc="first", sort=False)
    return table


def ratios(times: pd.DataFrame) -> pd.DataFrame:
    """r = t / t_best per workload (column), t_best the column's minimum; ∞ if not reached.

    A column nobody reached is ∞ for everyone. ``times`` holds one ruleset.
    """
    t = times.to_numpy(float)
    best = np.min(t, axis=0, initial=np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(np.isfinite(t) & np.isfinite(best)[None, :], t / best[None, :], np.inf)
    return pd.DataFrame(r, index=times.index, columns=times.columns)


def profile(r: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """ρ(τ): per optimizer (row), the fraction of workloads with r ≤ τ, one column per τ."""
    values = (r.to_numpy(float)[:, :, None] <= np.asarray(taus)[None, None, :]).mean(axis=1)
    return pd.DataFrame(values, index=r.index, columns=np.asarray(taus))


def score(r: pd.DataFrame | np.ndarray, r_max: float = R_MAX) -> np.ndarray:
    """∫₁^{r_max} ρ(τ) dτ / (r_max − 1) per row, exactly (ρ is a step function)."""
    values = np.asarray(r, float)
    return np.clip(r_max - values, 0.0, r_max - 1.0).mean(axis=-1) / (r_max - 1.0)


def scores(results: pd.DataFrame, min_fraction: float = MIN_FRACTION,
           r_max: float = R_MAX) -> pd.DataFrame:
    """score_steps and score_seconds per (ruleset, optimizer), each ruleset scored alone."""
    out = []
    for col, name in (("steps_to_target", "score_steps"), ("seconds_to_target", "score_seconds")):
        times = times_table(results, col, min_fraction)
        parts = []
        for ruleset, block in times.groupby(level="ruleset", sort=False):
            parts.append(pd.Series(score(ratios(block), r_max), index=block.index, name=name))
        out.append(pd.concat(parts))
    return pd.concat(out, axis=1)


def bootstrap_draws(results: pd.DataFrame, n_boot: int = 200, seed: int = 0,
                    min_fraction: float = MIN_FRACTION, r_max: float = R_MAX
                    ) -> dict[tuple[str, str], pd.DataFrame]:
    """Bootstrap replicates of the scores: ``{(score name, ruleset): n_boot x optimizers}``.

    Every replicate resamples, per (workload, optimizer, ruleset), its studies with
    replacement and each drawn study's trials with replacement; ties and ∞ are kept.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for col, name in (("steps_to_target", "score_steps"), ("seconds_to_target", "score_seconds")):
        for ruleset, block in results.groupby("ruleset", sort=False):
            optimizers = list(dict.fromkeys(block["optimizer"]))
            workloads = list(dict.fromkeys(block["workload"]))
            cells = {}
            for (w, o), g in block.groupby(["workload", "optimizer"], sort=False):
                cells[(w, o)] = _studies(g, col)
            draws = np.empty((n_boot, len(optimizers)))
            for b in range(n_boot):
                t = np.full((len(optimizers), len(workloads)), np.inf)
                for i, o in enumerate(optimizers):
                    for j, w in enumerate(workloads):
                        studies = cells.get((w, o))
                        if not studies:
                            continue
                        picked = [studies[k] for k in rng.integers(0, len(studies), len(studies))]
                        t[i, j] = workload_time(
                            [s[rng.integers(0, len(s), len(s))] for s in picked], min_fraction)
                best = t.min(axis=0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    r = np.where(np.isfinite(t) & np.isfinite(best), t / best, np.inf)
                draws[b] = score(r, r_max)
            out[(name, ruleset)] = pd.DataFrame(draws, columns=optimizers)
    return out


def bootstrap_scores(results: pd.DataFrame, n_boot: int = 200, seed: int = 0,
                     min_fraction: float = MIN_FRACTION, r_max: float = R_MAX,
                     level: float = 0.95, draws: Mapping | None = None) -> pd.DataFrame:
    """``scores`` with bootstrap confidence bounds (``<score>_low``, ``<score>_high``)."""
    point = scores(results, min_fraction, r_max)
    draws = draws or bootstrap_draws(results, n_boot, seed, min_fraction, r_max)
    tail = (1.0 - level) / 2.0
    for (name, ruleset), d in draws.items():
        low, high = np.quantile(d.to_numpy(), [tail, 1.0 - tail], axis=0)
        for i, o in enumerate(d.columns):
            point.loc[(ruleset, o), f"{name}_low"] = low[i]
            point.loc[(ruleset, o), f"{name}_high"] = high[i]
    cols = ["score_steps", "score_steps_low", "score_steps_high",
            "score_seconds", "score_seconds_low", "score_seconds_high"]
    return point[cols]


def score_difference(point: pd.DataFrame, draws: Mapping, a: str, b: str, ruleset: str,
                     name: str = "score_steps", level: float = 0.95) -> tuple[float, float, float]:
    """Score of ``a`` minus score of ``b`` with a bootstrap interval from the joint draws."""
    d = draws[(name, ruleset)]
    diff = d[a].to_numpy() - d[b].to_numpy()
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(diff, [tail, 1.0 - tail])
    return (float(point.loc[(ruleset, a), name] - point.loc[(ruleset, b), name]),
            float(low), float(high))


def budget_curve(values: Iterable[float], k_max: int, maximize: bool, n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Expected best value after k = 1..k_max trials drawn with replacement from ``values``.

    Columns ``k``, ``mean``, ``low``, ``high`` (the ``level`` band of the best-of-k draws).
    NaN values (a trial with no evaluation) count as the worst value of the pool.
    """
    v = np.asarray(list(values), float)
    finite = v[np.isfinite(v)]
    worst = (finite.min() if maximize else finite.max()) if len(finite) else np.nan
    v = np.where(np.isfinite(v), v, worst)
    rng = np.random.default_rng(seed)
    tail = (1.0 - level) / 2.0
    rows = []
    for k in range(1, k_max + 1):
        draws = v[rng.integers(0, len(v), (n_boot, k))]
        best = draws.max(axis=1) if maximize else draws.min(axis=1)
        low, high = np.quantile(best, [tail, 1.0 - tail])
        rows.append({"k": k, "mean": best.mean(), "low": low, "high": high})
    return pd.DataFrame(rows)


def budget_curves(results: pd.DataFrame, maximize: Mapping[str, bool], n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """``budget_curve`` per (workload, optimizer) of the tuned ruleset, k up to its K."""
    tuned = results[results["ruleset"] == "tuned"]
    parts = []
    for (workload, optimizer), g in tuned.groupby(["workload", "optimizer"], sort=False):
        k_max = int(g.groupby("study")["trial"].count().max())
        curve = budget_curve(g["best_value"], k_max, maximize[workload], n_boot, seed)
        curve.insert(0, "optimizer", optimizer)
        curve.insert(0, "workload", workload)
        parts.append(curve)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def twin_check(results: pd.DataFrame,
               exact_pairs: Mapping[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare exact twin pairs (``{"sgd": "keras_sgd", ...}``) trial by trial.

    Rows are matched on workload, ruleset, study and trial (same seed, same sampled
    hyperparameters); a mismatch is a different steps_to_target (∞ counts as a value).
    Returns (summary: pair, compared, mismatches; the mismatching rows).
    """
    keys = ["workload", "ruleset", "study", "trial"]
    summary, bad_rows = [], []
    for custom, keras in exact_pairs.items():
        a = results[results["optimizer"] == custom].set_index(keys)["steps_to_target"]
        b = results[results["optimizer"] == keras].set_index(keys)["steps_to_target"]
        both = a.to_frame("custom").join(b.to_frame("keras"), how="inner").fillna(np.inf)
        bad = both[both["custom"] != both["keras"]].reset_index()
        bad.insert(0, "pair", f"{custom} / {keras}")
        bad_rows.append(bad)
        summary.append({"pair": f"{custom} / {keras}", "compared": len(both),
                        "mismatches": len(bad)})
    columns = ["pair", *keys, "custom", "keras"]
    bad = pd.concat(bad_rows, ignore_index=True) if bad_rows else pd.DataFrame(columns=columns)
    return pd.DataFrame(summary, columns=["pair", "compared", "mismatches"]), bad


def format_ci(value: float, low: float, high: float, digits: int = 2) -> str:
    """``0.53 [0.41, 0.67]``."""
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
