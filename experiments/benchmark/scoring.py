"""Scores of the benchmark: pure functions of its trial table (no models, no TensorFlow).

``python -m experiments.benchmark`` writes one row per trial (``results.csv``: workload,
optimizer, ruleset, study, trial, steps_to_target, seconds_to_target, best_value, diverged,
budget_steps, eval_every, the hyperparameters, ...); everything here reads such a table
and nothing else, so it is tested on tables written by hand (AlgoPerf keeps its scorer
apart from its runner in the same way: ``scoring/performance_profile.py``).

Time to target of one optimizer on one workload (AlgoPerf's external-tuning rule)
----------------------------------------------------------------------------------
* A **study** is K trials (K quasi-random hyperparameter points; in the defaults ruleset
  one trial at the defaults, one study per seed). The study's time is that of its
  **fastest trial that reached the target** (∞ if none did). This is AlgoPerf's rule as
  its rules document states it. (Its scorer asked, between November 2023 and March 2024,
  that at least 3 of 5 trials reach the target; that check is not in its rules, and it
  is not here: with the registry's wide, workload-agnostic search spaces it would score
  the width of a space, not the rule.)
* The workload's time is the **median over studies**, taken as the lower median (the
  ⌈S/2⌉-th smallest): the time that at least half of the studies reached. For an odd S
  it is the median; for an even S it does not turn into ∞ when exactly half the studies
  miss (``numpy.median([t, ∞])`` would).
* Times are counted at the evaluation's resolution: a time below one evaluation period
  (a target met at the step-0 evaluation: t = 0) counts as one period (steps: the row's
  ``eval_every``; seconds: the trial's seconds per step times that), so that no ratio
  is 0/0.

Performance profile and score (all optimizers of a ruleset)
-----------------------------------------------------------
* ``r = t / t_best`` per workload, ``t_best`` the best time of any optimizer in the same
  ruleset (a workload nobody reached gives everyone r = ∞; it still counts in the
  denominator, so every score is out of the same W workloads).
* ρ(τ) = the fraction of workloads with r ≤ τ; score = ∫₁^{r_max} ρ(τ) dτ / (r_max − 1),
  r_max = 4 (AlgoPerf). A step function integrates exactly: score = mean over workloads
  of max(0, r_max − r) / (r_max − 1).
* In optimizer steps (machine-independent) and in seconds (this machine).

Uncertainty of the scores (paired bootstrap)
--------------------------------------------
A replicate draws, per workload, S studies with replacement, the **same study indices
for every optimizer** (the studies share their hyperparameter quantiles and seeds: the
design is paired), and recomputes every time and score. Intervals are the percentiles of
the replicates. They describe the leaderboard; they decide nothing (a score is a ratio
to the best of every rule of the table, wide by construction). The verdicts on two rules
come from ``experiments.benchmark.verdicts``: a paired per-study statistic that knows
about censoring.

Budget curves
-------------
``budget_curve``: the expected best validation value after k = 1..K trials drawn from the
trial pool (with replacement, bootstrapped), with a 95 % band: how much tuning each rule
needs (Sivaprasad et al. 2020; Schmidt et al. 2021).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

R_MAX = 4.0
KEYS = ("workload", "optimizer", "ruleset")


def study_time(times: Iterable[float]) -> float:
    """A study's time to target: its fastest trial's (``times``: ∞ or NaN = not reached)."""
    t = np.asarray(list(times), float)
    t = t[np.isfinite(t)]
    return float(t.min()) if len(t) else math.inf


def lower_median(values, axis: int = -1):
    """The ⌈n/2⌉-th smallest along ``axis`` (the median for odd n; ∞ sorts last)."""
    v = np.sort(np.asarray(values, float), axis=axis)
    n = v.shape[axis]
    return np.take(v, (n - 1) // 2, axis=axis)


def workload_time(study_times: Iterable[float]) -> float:
    """The lower median over studies of their times (``study_time`` each)."""
    values = list(study_times)
    return float(lower_median(values)) if values else math.inf


def _floor(rows: pd.DataFrame, col: str) -> np.ndarray:
    """One evaluation period per row, in the unit of ``col`` (see the module docstring)."""
    every = rows["eval_every"].to_numpy(float) if "eval_every" in rows else np.ones(len(rows))
    if col == "steps_to_target":
        return every
    if {"seconds", "steps_run"} <= set(rows.columns):
        per_step = rows["seconds"].to_numpy(float) / np.maximum(rows["steps_run"].to_numpy(float), 1)
        return np.where(per_step > 0, per_step * every, 1e-9)
    return np.full(len(rows), 1e-9)


def trial_times(rows: pd.DataFrame, col: str) -> np.ndarray:
    """``col`` of each row as a time: ∞ where not reached, at least one period."""
    t = rows[col].to_numpy(float)
    return np.where(np.isfinite(t), np.maximum(t, _floor(rows, col)), np.inf)


def study_table(results: pd.DataFrame, col: str = "steps_to_target") -> dict:
    """``{ruleset: (optimizers, workloads, {workload: optimizers x studies times})}``: the
    study times, ∞ for a study an optimizer did not run or never reached."""
    out = {}
    frame = results.assign(_time=trial_times(results, col))
    for ruleset, block in frame.groupby("ruleset", sort=False):
        optimizers = list(dict.fromkeys(block["optimizer"]))
        workloads = list(dict.fromkeys(block["workload"]))
        cells = {}
        for w, g in block.groupby("workload", sort=False):
            studies = sorted(g["study"].unique())
            t = np.full((len(optimizers), len(studies)), np.inf)
            best = g.groupby(["optimizer", "study"])["_time"].min()
            for (o, s), v in best.items():
                t[optimizers.index(o), studies.index(s)] = v
            cells[w] = t
        out[ruleset] = (optimizers, workloads, cells)
    return out


def times_table(results: pd.DataFrame, col: str = "steps_to_target") -> pd.DataFrame:
    """Time to target per (ruleset, optimizer) row and workload column (∞: not reached)."""
    parts = []
    for ruleset, (optimizers, workloads, cells) in study_table(results, col).items():
        t = np.stack([lower_median(cells[w]) for w in workloads], axis=1)
        index = pd.MultiIndex.from_tuples([(ruleset, o) for o in optimizers],
                                          names=["ruleset", "optimizer"])
        parts.append(pd.DataFrame(t, index=index, columns=workloads))
    table = pd.concat(parts) if parts else pd.DataFrame()
    table.columns.name = "workload"
    return table


def ratios(times: pd.DataFrame) -> pd.DataFrame:
    """r = t / t_best per workload (column), t_best the column's minimum; ∞ if not reached.

    A column nobody reached is ∞ for everyone. ``times`` holds one ruleset.
    """
    return pd.DataFrame(_ratios(times.to_numpy(float)), index=times.index,
                        columns=times.columns)


def _ratios(t: np.ndarray) -> np.ndarray:
    """``t / min over axis -2`` (optimizers), ∞ where either is ∞."""
    best = np.min(t, axis=-2, keepdims=True, initial=np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(t) & np.isfinite(best), t / best, np.inf)


def profile(r: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """ρ(τ): per optimizer (row), the fraction of workloads with r ≤ τ, one column per τ."""
    values = (r.to_numpy(float)[:, :, None] <= np.asarray(taus)[None, None, :]).mean(axis=1)
    return pd.DataFrame(values, index=r.index, columns=np.asarray(taus))


def score(r: pd.DataFrame | np.ndarray, r_max: float = R_MAX) -> np.ndarray:
    """∫₁^{r_max} ρ(τ) dτ / (r_max − 1) per row, exactly (ρ is a step function)."""
    values = np.asarray(r, float)
    return np.clip(r_max - values, 0.0, r_max - 1.0).mean(axis=-1) / (r_max - 1.0)


def scores(results: pd.DataFrame, r_max: float = R_MAX) -> pd.DataFrame:
    """score_steps and score_seconds per (ruleset, optimizer), each ruleset scored alone."""
    out = []
    for col, name in (("steps_to_target", "score_steps"), ("seconds_to_target", "score_seconds")):
        times = times_table(results, col)
        parts = []
        for ruleset, block in times.groupby(level="ruleset", sort=False):
            parts.append(pd.Series(score(ratios(block), r_max), index=block.index, name=name))
        out.append(pd.concat(parts))
    return pd.concat(out, axis=1)


def replicate_times(cells: Mapping[str, np.ndarray], workloads: Sequence[str], n_boot: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Paired bootstrap replicates of the workload times: n_boot x optimizers x workloads;
    per workload the same resampled studies for every optimizer."""
    out = []
    for w in workloads:
        t = cells[w]
        idx = rng.integers(0, t.shape[1], (n_boot, t.shape[1]))
        out.append(lower_median(t[:, idx], axis=-1).T)  # n_boot x optimizers
    return np.stack(out, axis=-1)


def bootstrap_draws(results: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                    r_max: float = R_MAX) -> dict[tuple[str, str], pd.DataFrame]:
    """Replicates of the scores: ``{(score name, ruleset): n_boot x optimizers}``."""
    out = {}
    for col, name in (("steps_to_target", "score_steps"), ("seconds_to_target", "score_seconds")):
        rng = np.random.default_rng(seed)  # the same study draws for steps and seconds
        for ruleset, (optimizers, workloads, cells) in study_table(results, col).items():
            t = replicate_times(cells, workloads, n_boot, rng)
            out[(name, ruleset)] = pd.DataFrame(score(_ratios(t), r_max), columns=optimizers)
    return out


def bootstrap_scores(results: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                     r_max: float = R_MAX, level: float = 0.95,
                     draws: Mapping | None = None) -> pd.DataFrame:
    """``scores`` with bootstrap confidence bounds (``<score>_low``, ``<score>_high``)."""
    point = scores(results, r_max)
    draws = draws or bootstrap_draws(results, n_boot, seed, r_max)
    tail = (1.0 - level) / 2.0
    for (name, ruleset), d in draws.items():
        low, high = np.quantile(d.to_numpy(), [tail, 1.0 - tail], axis=0)
        for i, o in enumerate(d.columns):
            point.loc[(ruleset, o), f"{name}_low"] = low[i]
            point.loc[(ruleset, o), f"{name}_high"] = high[i]
    cols = ["score_steps", "score_steps_low", "score_steps_high",
            "score_seconds", "score_seconds_low", "score_seconds_high"]
    return point[cols]


def cells_at_target(results: pd.DataFrame, optimizers: Sequence[str] | None = None,
                    ruleset: str = "tuned") -> tuple[int, int]:
    """(reached, all) over the (workload, optimizer, study) cells of ``ruleset``: a cell
    reached its target when one of its trials did."""
    block = results[results["ruleset"] == ruleset]
    if optimizers is not None:
        block = block[block["optimizer"].isin(optimizers)]
    hit = block["steps_to_target"].notna().groupby(
        [block["workload"], block["optimizer"], block["study"]]).any()
    return int(hit.sum()), int(len(hit))


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
