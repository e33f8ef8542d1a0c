"""The lecture's claims and today's, read from a trial table: verdicts, power, tables.

``claims_frame`` runs ``verdicts.compare`` on every claim whose two rules ran, in every
ruleset, corrects the whole family together (``verdicts.family``: Holm) and adds, per
claim, the power of its own design (``power``: simulated from the design estimated from
its trials). ``claims_table``, ``information_table`` turn it into Markdown.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from experiments.core import markdown
from experiments.benchmark import power, verdicts

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

FAMILIES = (("lecture", CLAIMS), ("newer", NEWER_CLAIMS))


def whole_curve(results: pd.DataFrame) -> bool:
    """Whether the trials kept their whole curves (``stop_at_target=false``): no trial
    that reached its target stopped before its budget."""
    if "steps_run" not in results:
        return False
    diverged = (results["diverged"].astype(bool) if "diverged" in results
                else pd.Series(False, index=results.index))
    hit = results["steps_to_target"].notna() & ~diverged
    return not bool((results.loc[hit, "steps_run"] < results.loc[hit, "budget_steps"]).any())


def claims_frame(results: pd.DataFrame, maximize: Mapping[str, bool], level: float = 0.95,
                 delta: float = 0.15, sims: int = 1000, seed: int = 0,
                 families: Sequence = FAMILIES) -> pd.DataFrame:
    """Every claim whose two rules ran, per ruleset, with its family verdict and power.

    ``sims`` simulated tables per true ratio for the power (0: none). Columns: those of
    ``verdicts.compare`` and ``verdicts.family``, ``family``, ``claim`` and
    ``detectable`` (the per-trial speed ratio found with 80 % power at α/m),
    ``false_rate`` (simulated decisive verdicts under the null at α), ``speed``,
    ``speed_low``, ``speed_high`` (the effect and its interval as per-trial speed ratios
    under the simulated model), ``design`` (S, K, ρ).
    """
    verdicts.check_table(results)
    have = set(results["optimizer"])
    full = whole_curve(results)
    rows = []
    for name, claims in families:
        for claim, a, b in claims:
            if a not in have or b not in have:
                continue
            for ruleset in dict.fromkeys(results["ruleset"]):
                block = results[results["ruleset"] == ruleset]
                if not {a, b} <= set(block["optimizer"]):
                    continue
                c = verdicts.compare(results, a, b, ruleset, maximize, level, delta, full)
                rows.append({"family": name, "claim": claim, **c})
    alpha = 1.0 - level
    rows = verdicts.family(rows, alpha, delta)
    for c in rows:
        c.update(detectable=math.nan, false_rate=math.nan, speed=math.nan,
                 speed_low=math.nan, speed_high=math.nan, design="")
        if not sims or c["status"] != "ok":
            continue
        design = power.estimate(results, c["a"], c["b"], c["ruleset"], c["used"], maximize)
        curve = power.power_curve(design, alpha / max(c["m"], 1), n_sim=sims, seed=seed)
        c["detectable"] = power.detectable(curve)
        c["false_rate"] = power.false_rate(design, alpha, sims, seed)
        c["speed"] = power.speed_ratio(curve, math.log(c["ratio"]))
        c["speed_low"] = power.speed_ratio(curve, math.log(c["ratio_low"]))
        c["speed_high"] = power.speed_ratio(curve, math.log(c["ratio_high"]))
        c["design"] = (f"S = {'/'.join(str(int(s)) for s in dict.fromkeys(design.studies))}"
                       f", K = {design.trials}, ρ = {design.rho:.2f}, per-trial misses "
                       + "/".join(f"{m:.0%}" for m in design.miss_rates()))
    return pd.DataFrame(rows)


def _num(x: float, fmt: str = ".2f") -> str:
    return f"{x:{fmt}}" if math.isfinite(x) else "–"


def _speed(c) -> str:
    if not math.isfinite(c.speed):  # beyond the simulated 0.2-5 or not simulated
        if not math.isfinite(c.ratio) or not math.isfinite(c.detectable):
            return "–"
        return "< 0.2" if c.ratio < 1 else "> 5"
    low = _num(c.speed_low) if math.isfinite(c.speed_low) else "< 0.2"
    high = _num(c.speed_high) if math.isfinite(c.speed_high) else "> 5"
    return f"{c.speed:.2f} [{low}, {high}]"


def verdict_text(c) -> str:
    """``holds (a faster, family level 0.003)``, ``too few studies (why)``..."""
    if c.verdict == "holds":
        return f"holds ({c.a} faster; family level {c.level:.2g})"
    if c.verdict == "reversed":
        return f"reversed ({c.b} faster; family level {c.level:.2g})"
    if c.verdict == "equivalent":
        return f"equivalent within ±{c.delta:.0%} (family level {c.level:.2g})"
    if c.verdict == "inconclusive":
        return (f"inconclusive (family p: {c.p_holm:.2g} for a difference, "
                f"{c.p_eq_holm:.2g} for equivalence)")
    return f"{c.verdict} ({c.why})"


def claims_table(claims: pd.DataFrame, level: float = 0.95, title: str = "claim") -> str:
    """The claims as Markdown: effect and interval, verdict with its family level, the
    win probability, the detectable per-trial speed ratio, the simulated false rate."""
    if claims.empty:
        return ""
    full = "best" in claims.columns
    body = []
    for c in claims.itertuples():
        row = [c.claim, c.ruleset, f"{c.a} / {c.b}",
               f"{_num(c.ratio)} [{_num(c.ratio_low)}, {_num(c.ratio_high)}]" if
               math.isfinite(c.ratio) else "–", _speed(c), verdict_text(c),
               f"{_num(c.win)} [{_num(c.win_low)}, {_num(c.win_high)}]" if
               math.isfinite(c.win) else "–"]
        if full:
            row.append(f"{_num(c.best)} [{_num(c.best_low)}, {_num(c.best_high)}] "
                       f"{c.best_verdict}" if math.isfinite(c.best) else "–")
        simulated = math.isfinite(c.false_rate)
        row += ["< 0.2" if simulated and not math.isfinite(c.detectable) else
                _num(c.detectable), _num(c.false_rate, ".1%")]
        body.append(row)
    head = [title, "ruleset", "rules a / b", f"time ratio a/b [{level:.0%} CI]",
            "per-trial speed ratio (model) [CI]", "verdict", "P(a better) [CI]"]
    if full:
        head.append("best value, a − b in workload SDs [CI], verdict")
    head += ["detectable per-trial ratio (80 % power)", "false verdicts (simulated)"]
    m = int(claims["m"].iloc[0])
    alpha = float(claims["alpha"].iloc[0])
    if not m:
        return (markdown.table(head, body) + "\n\nNo claim could be tested: each lacks the "
                "shared studies or the information a verdict needs (per workload below).\n")
    return (markdown.table(head, body) +
            f"\n\n{m} claims are tested together: each verdict is Holm-corrected over "
            f"the family at α = {alpha:.2g}; its family level is the smallest α at which "
            f"it would still hold. The detectable ratio is at the family's first Holm "
            f"level α/m = {alpha / max(m, 1):.2g}; the false-verdict rate is simulated at "
            f"α = {alpha:.2g} per claim.\n")


def information_table(claims: pd.DataFrame) -> str:
    """Per claim and workload what the verdict used: studies, hits of a / b, or why not."""
    if claims.empty:
        return ""
    workloads = list(dict.fromkeys(w for info in claims["information"] for w in info))
    body = [[f"{c.a} / {c.b}", c.ruleset,
             *(c.information.get(w, "–") for w in workloads)] for c in claims.itertuples()]
    return markdown.table(["rules a / b", "ruleset", *workloads], body)


def metrics(claims: pd.DataFrame) -> dict:
    """The claims' numbers for the parent run's MLflow metrics."""
    out = {}
    for c in claims.itertuples():
        key = f"claim/{c.ruleset}/{c.a}_vs_{c.b}"
        for name in ("ratio", "ratio_low", "ratio_high", "win", "detectable", "level"):
            value = getattr(c, name)
            if isinstance(value, float) and np.isfinite(value):
                out[f"{key}/{name}"] = value
    return out
