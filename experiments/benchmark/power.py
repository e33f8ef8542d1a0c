"""Power of the verdicts, in per-trial speed units, by simulating the run's own design.

``python -m experiments.benchmark.power [FOLDER]``: without a folder, the default design
(5 workloads, S = 10 studies x K = 8 trials, per-trial miss rates 10-90 %); with the
output_dir of a run, each claim's design estimated from its trials. It prints the
false-verdict rate under the null, the power at true per-trial speed ratios 0.8 and 0.67,
and the smallest ratio found with 80 % power.

The model (``docs/benchmark-protocol.md``, "Power"): per workload w, study s, trial k,
rule b needs exp(μ_w + σ_w z) steps and rule a r times as many (r: the **per-trial speed
ratio**); z of the two rules in the same study and trial are correlated (ρ: the paired
draws share hyperparameter quantiles and seeds); a trial misses when it needs more than the
budget; hits are recorded on the evaluation grid. A study's time is its fastest trial's,
so only the per-study minimum of z is drawn per rule: thousands of tables in a second.
Every simulated table goes through the same test as the report
(``verdicts.log_time_differences``, ``stats.paired_t``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from experiments.benchmark import stats, verdicts

#: per-trial speed ratios the power curve is drawn at (a needs r times b's steps)
RATIOS = np.exp(np.linspace(math.log(0.2), 0.0, 25))


@dataclasses.dataclass(frozen=True)
class Design:
    """What the simulation needs, per workload: ``mu``/``sigma`` (log steps a trial of
    rule b needs), ``budget``, ``every`` (evaluation period), ``studies`` (shared S);
    ``trials`` (K) and ``rho`` (the paired trials' correlation)."""

    workloads: tuple
    mu: np.ndarray
    sigma: np.ndarray
    budget: np.ndarray
    every: np.ndarray
    studies: np.ndarray
    trials: int
    rho: float

    def miss_rates(self) -> np.ndarray:
        """The per-trial miss rate of rule b per workload, P(steps > budget)."""
        from scipy import special

        return special.ndtr(-(np.log(self.budget) - self.mu) / self.sigma)


def default_design(miss=(0.1, 0.3, 0.5, 0.7, 0.9), studies: int = 10, trials: int = 8,
                   sigma: float = 1.0, rho: float = 0.5, budget: float = 1000.0,
                   every: float = 25.0) -> Design:
    """The default preset's shape: 5 workloads with per-trial miss rates 10-90 %,
    S = 10 x K = 8, a budget of 40 evaluations, log-steps spread σ = 1, ρ = 0.5."""
    miss = np.asarray(miss, float)
    w = len(miss)
    sig = np.full(w, sigma)
    mu = math.log(budget) - sig * stats.normal_quantile(1.0 - miss)
    return Design(tuple(f"w{i}" for i in range(w)), mu, sig, np.full(w, budget),
                  np.full(w, every), np.full(w, studies), trials, rho)


def simulate(design: Design, ratios: Sequence[float], n_sim: int, seed: int = 0) -> np.ndarray:
    """Study times ``(len(ratios), n_sim, W, 2, S_max)`` (∞ = missed; cells beyond a
    workload's S are ∞ for both and masked by ``cell_mask``). The same draws serve every
    ratio (common random numbers: power rises smoothly with the effect)."""
    rng = np.random.default_rng(seed)
    w, s, k = len(design.workloads), int(design.studies.max()), design.trials
    shared = rng.standard_normal((n_sim, w, s, k))
    own = rng.standard_normal((2, n_sim, w, s, k))
    z = math.sqrt(design.rho) * shared + math.sqrt(1.0 - design.rho) * own
    zmin = z.min(axis=-1).transpose(1, 2, 0, 3)  # n_sim, W, 2, S
    shift = np.stack([np.log(np.asarray(ratios, float)), np.zeros(len(ratios))], axis=-1)
    col = (slice(None), None, None)
    log_t = (shift[:, None, None, :, None] + design.mu[col]
             + design.sigma[col] * zmin[None])
    steps = np.exp(log_t)
    budget, every = design.budget[col], design.every[col]
    grid = np.minimum(np.maximum(np.ceil(steps / every) * every, every), budget)
    t = np.where(steps <= budget, grid, np.inf)
    return np.where(cell_mask(design)[:, None, :], t, np.inf)


def cell_mask(design: Design) -> np.ndarray:
    """``(W, S_max)``: the cells each workload has."""
    return np.arange(int(design.studies.max()))[None, :] < design.studies[:, None]


def tested(design: Design, t: np.ndarray, level: float = 0.95) -> dict:
    """The report's test on simulated times ``(..., W, 2, S)``: d per cell, a workload both
    rules missed everywhere left out; ``stats.paired_t`` over the rest."""
    bplus = (design.budget + design.every)[:, None, None]
    d = verdicts.log_time_differences(t, bplus)  # ..., W, S
    informative = np.isfinite(t).any(axis=(-2, -1))[..., None]
    mask = informative & cell_mask(design)
    flat = d.shape[:-2] + (-1,)
    return stats.paired_t(np.where(mask, d, 0.0).reshape(flat), mask.reshape(flat), level)


def decisive(r: dict, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(a faster, b faster) at level ``alpha``: p ≤ α and a sign-flip floor ≤ α."""
    ok = (r["p"] <= alpha) & (stats.sign_floor(r["nonzero"]) <= alpha)
    return ok & (r["mean"] < 0), ok & (r["mean"] > 0)


def power_curve(design: Design, alpha: float = 0.05, ratios: Sequence[float] = RATIOS,
                n_sim: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per true ratio: ``power`` (P(a read faster)), ``wrong`` (P(b read faster)),
    ``effect`` (the mean over simulations of the estimated log time ratio)."""
    r = tested(design, simulate(design, ratios, n_sim, seed))
    faster, slower = decisive(r, alpha)
    return pd.DataFrame({"ratio": np.asarray(ratios, float), "power": faster.mean(axis=1),
                         "wrong": slower.mean(axis=1),
                         "effect": np.nanmean(r["mean"], axis=1)})


def false_rate(design: Design, alpha: float = 0.05, n_sim: int = 2000, seed: int = 0) -> float:
    """The share of decisive verdicts (either direction) on null tables (ratio 1)."""
    faster, slower = decisive(tested(design, simulate(design, [1.0], n_sim, seed)), alpha)
    return float((faster | slower).mean())


def detectable(curve: pd.DataFrame, power: float = 0.8) -> float:
    """The per-trial speed ratio closest to 1 found with ``power`` (log-interpolated on the
    curve); NaN when no ratio of the curve reaches it."""
    c = curve.sort_values("ratio", ascending=False)
    r, p = c["ratio"].to_numpy(), c["power"].to_numpy()
    above = np.flatnonzero(p >= power)
    if not len(above):
        return math.nan
    i = above[0]
    if i == 0:
        return float(r[0])
    f = (power - p[i - 1]) / (p[i] - p[i - 1])
    return float(math.exp(math.log(r[i - 1]) + f * (math.log(r[i]) - math.log(r[i - 1]))))


def estimate(results: pd.DataFrame, a: str, b: str, ruleset: str, workloads: Sequence[str],
             maximize: Mapping[str, bool]) -> Design | None:
    """The design of claim a vs b from its trials (pooled: under the null the rules are
    alike): per workload μ, σ by a normal Q-Q fit of the hits' log steps (misses censored;
    σ = 1 where fewer than 3 hits), S, K, budget, period; ρ from the normal scores of the
    paired trials' ranks (misses ranked last). None without a workload."""
    cells = verdicts.paired_cells(results, a, b, ruleset, maximize)
    mine = results[(results["ruleset"] == ruleset) & results["optimizer"].isin([a, b])]
    rows, rho_parts = [], []
    for w in workloads:
        g = mine[(mine["workload"] == w) & mine["study"].isin(cells[w]["studies"])]
        budget = float(g["budget_steps"].max())
        steps = g["steps_to_target"].to_numpy(float)
        t = np.where(np.isfinite(steps), np.maximum(steps, g["eval_every"].to_numpy(float)),
                     np.inf)
        n, y = len(t), np.sort(np.log(t[np.isfinite(t)]))
        if len(y) >= 3 and np.ptp(y) > 0:
            z = stats.normal_quantile((np.arange(1, len(y) + 1) - 0.5) / n)
            sigma, mu = np.polyfit(z, y, 1)
            sigma = float(np.clip(sigma, 0.05, 5.0))
        else:
            sigma = 1.0
            mu = math.log(budget) - sigma * float(stats.normal_quantile((len(y) + 0.5) / (n + 1)))
        k = int(g.groupby(["optimizer", "study"])["trial"].count().max())
        rows.append((w, mu, sigma, budget, cells[w]["every"], len(cells[w]["studies"]), k))
        wide = g.assign(t=np.where(np.isfinite(t), t, np.inf)).pivot_table(
            index=["study", "trial"], columns="optimizer", values="t", aggfunc="min").dropna()
        if len(wide) > 2:
            ranks = wide.rank(method="average").to_numpy()
            rho_parts.append(stats.normal_quantile((ranks - 0.5) / len(wide)))
    if not rows:
        return None
    scores = np.concatenate(rho_parts) if rho_parts else np.zeros((0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant column: NaN, then 0.5
        rho = float(np.corrcoef(scores.T)[0, 1]) if len(scores) > 2 else 0.5
    rho = float(np.clip(rho if math.isfinite(rho) else 0.5, 0.0, 0.95))
    w, mu, sigma, budget, every, s, k = zip(*rows)
    return Design(tuple(w), np.array(mu), np.array(sigma), np.array(budget), np.array(every),
                  np.array(s), max(k), rho)


def speed_ratio(curve: pd.DataFrame, mean_log: float) -> float:
    """The per-trial speed ratio whose expected log time ratio is ``mean_log`` (the curve's
    ``effect``, inverted; the curve runs from 0.2 to 1, mirrored for a > 1: the design is
    symmetric in the two rules). NaN outside the curve's range."""
    if not math.isfinite(mean_log):
        return math.nan
    c = curve.sort_values("effect")
    eff, r = c["effect"].to_numpy(), np.log(c["ratio"].to_numpy())
    x = -abs(mean_log)
    if x < eff[0]:
        return math.nan
    value = float(np.interp(x, eff, r))
    return math.exp(value if mean_log <= 0 else -value)


def main(argv=None) -> None:
    """``python -m experiments.benchmark.power``: false-verdict rate and power of the
    verdicts on the default design (``--studies``, ``--trials`` change S and K)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m experiments.benchmark.power",
                                     description=main.__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulated tables per ratio")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--studies", type=int, default=10)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args(argv)
    for name in ("sims", "studies", "trials"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)} must be a positive integer")
    if not 0 < args.alpha < 1:
        parser.error(f"--alpha={args.alpha} must lie in (0, 1)")
    design = default_design(studies=args.studies, trials=args.trials)
    curve = power_curve(design, args.alpha, [1.0, 0.8, 0.67, *RATIOS], args.sims)
    rate = curve["power"].iloc[0] + curve["wrong"].iloc[0]
    se = math.sqrt(rate * (1 - rate) / args.sims)
    print(f"Design ({len(design.workloads)} workloads, S = "
          f"{int(design.studies[0])} x K = {design.trials}, per-trial miss rates "
          f"{', '.join(f'{m:.0%}' for m in design.miss_rates())}, sigma = 1, rho = "
          f"{design.rho}), {args.sims} simulated tables per ratio, level {args.alpha}:")
    print(f"  false decisive verdicts under the null: {rate:.2%} ± {se:.2%}")
    for r in (0.8, 0.67):
        p = curve.loc[curve["ratio"] == r, "power"].iloc[0]
        print(f"  power at a per-trial speed ratio of {r}: {p:.1%} "
              f"± {math.sqrt(p * (1 - p) / args.sims):.1%}")
    print(f"  smallest ratio found with 80 % power: {detectable(curve.iloc[3:]):.3f}")


if __name__ == "__main__":
    main()
