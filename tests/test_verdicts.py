"""The paired verdicts (``experiments.benchmark.verdicts``, ``stats``, ``claims``) on trial
tables written by hand, against independent references (scipy.stats, hand arithmetic)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from experiments.benchmark import claims, stats, verdicts
from tests.test_scoring import table as scoring_table

INF = math.inf
BUDGET, EVERY = 100, 10


def table(times: dict, ruleset="tuned", best=None) -> pd.DataFrame:
    """{optimizer: {workload: [[trial steps of study 0], [study 1], ...]}} -> trial rows
    (INF: missed), budget 100, an evaluation every 10 steps."""
    return scoring_table(times, ruleset, BUDGET, EVERY, best)


def compare(t, a="a", b="b", **kw):
    return verdicts.compare(t, a, b, "tuned", {}, **kw)


def one_claim(t, a="a", b="b"):
    """The family verdict of one claim (m = 1, no power simulation)."""
    f = claims.claims_frame(t, {}, sims=0, families=(("x", (("a beats b", a, b),)),))
    return f.iloc[0]


# ------------------------------------------------------------------ the paired t-test
def test_paired_t_matches_scipy_and_the_interval():
    rng = np.random.default_rng(0)
    d = rng.normal(0.2, 1.0, (4, 30))
    r = stats.paired_t(d, level=0.9)
    ref = sps.ttest_1samp(d, 0.0, axis=1)
    assert r["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    for i in range(4):
        lo, hi = sps.t.interval(0.9, 29, loc=d[i].mean(), scale=sps.sem(d[i]))
        assert (r["low"][i], r["high"][i]) == pytest.approx((lo, hi), rel=1e-9)
    # a mask drops cells: the same as the test on the kept cells alone
    mask = rng.random(d.shape) < 0.6
    masked = stats.paired_t(d, mask)
    for i in range(4):
        assert masked["p"][i] == pytest.approx(sps.ttest_1samp(d[i][mask[i]], 0).pvalue)
        assert masked["n"][i] == mask[i].sum()


def test_equivalence_p_is_below_alpha_exactly_when_the_interval_is_inside_the_margin():
    rng = np.random.default_rng(1)
    margin = math.log(1.15)
    d = rng.normal(rng.uniform(-0.2, 0.2, (400, 1)), 0.3, (400, 25))
    r = stats.paired_t(d, level=0.95, margin=margin)
    inside = (r["low"] > -margin) & (r["high"] < margin)
    assert inside.any() and (~inside).any()
    assert np.array_equal(r["p_eq"] <= 0.05, inside)


def test_no_spread_and_the_sign_flip_floor():
    r = stats.paired_t(np.array([[0.0] * 6, [0.3] * 6]), margin=0.1)
    assert r["p"].tolist() == [1.0, 0.0]
    assert r["p_eq"].tolist() == [0.0, 1.0]  # all 0 within ±0.1; all 0.3 outside
    assert r["low"][1] == r["high"][1] == pytest.approx(0.3)
    assert stats.sign_floor([5, 10]).tolist() == pytest.approx([2 / 32, 2 / 1024])


def test_holm_against_hand_arithmetic():
    p = [0.01, 0.04, np.nan, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 0.02, 0.03, 0.06, 0.06 (monotone)
    assert stats.holm(p)[[4, 0, 3, 1]].tolist() == pytest.approx([0.02, 0.03, 0.06, 0.06])
    assert math.isnan(stats.holm(p)[2])


# --------------------------------------------------------- the estimand on hand tables
def test_paired_log_ratio_by_hand_with_misses_ranked_after_every_hit():
    # w: a 10 vs b 20 in 3 studies, a misses vs b 50 in 2 studies (a miss = B+ = 110)
    t = table({"a": {"w": [[10]] * 3 + [[INF]] * 2}, "b": {"w": [[20]] * 5}})
    c = compare(t)
    d = [math.log(10 / 20)] * 3 + [math.log(110 / 20)] * 2
    assert c["ratio"] == pytest.approx(math.exp(np.mean(d)))
    assert c["p"] == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    assert c["win"] == pytest.approx(3 / 5)  # 3 earlier hits, 2 misses against hits


def test_a_miss_does_not_tie_with_a_hit_at_the_last_evaluation():
    t = table({"a": {"w": [[INF]] * 5}, "b": {"w": [[BUDGET]] * 5}})
    c = compare(t)
    assert c["ratio"] == pytest.approx((BUDGET + EVERY) / BUDGET)
    assert c["win"] == 0.0


def test_a_hit_at_step_zero_counts_one_evaluation_period():
    both = table({"a": {"w": [[0]] * 5}, "b": {"w": [[0]] * 5}})
    assert compare(both)["ratio"] == 1.0
    t = table({"a": {"w": [[0]] * 5}, "b": {"w": [[20]] * 5}})
    assert compare(t)["ratio"] == pytest.approx(0.5)  # 10 / 20, not 1 / 20


def test_ties_are_ties():
    t = table({"a": {"w": [[30], [INF], [50], [20], [70]] * 2},
               "b": {"w": [[30], [INF], [50], [20], [70]] * 2}})
    c = compare(t)
    assert (c["ratio"], c["ratio_low"], c["ratio_high"], c["p"]) == (1.0, 1.0, 1.0, 1.0)
    assert c["win"] == 0.5
    assert one_claim(t)["verdict"] == "equivalent"  # no difference in any of 10 cells
    # 5 tied cells are not enough to call two rules equivalent at 5 %
    assert one_claim(t[t["study"] < 5])["verdict"] == "too few studies"


def test_two_misses_compare_their_best_values_in_the_win_probability():
    t = table({"a": {"w": [[INF]] * 5, "v": [[10]] * 5},
               "b": {"w": [[INF]] * 5, "v": [[20]] * 5}}, best={"a": 0.7, "b": 0.6})
    c = compare(t)
    assert c["win"] == 1.0
    lower = verdicts.compare(t, "a", "b", "tuned", {"w": False})  # a loss: smaller wins
    assert lower["win"] == pytest.approx(0.5)  # w lost, v won


def test_a_workload_both_rules_miss_everywhere_is_no_information_and_left_out():
    rng = np.random.default_rng(2)
    a = [[float(x)] for x in rng.integers(10, 60, 6)]
    b = [[float(x)] for x in rng.integers(10, 90, 6)]
    alone = compare(table({"a": {"w": a}, "b": {"w": b}}))
    both = compare(table({"a": {"w": a, "dead": [[INF]] * 6},
                          "b": {"w": b, "dead": [[INF]] * 6}}))
    assert both["ratio"] == pytest.approx(alone["ratio"])  # not diluted toward 1
    assert both["p"] == pytest.approx(alone["p"])
    assert both["information"]["dead"].startswith("no information")
    dead = compare(table({"a": {"dead": [[INF]] * 6}, "b": {"dead": [[INF]] * 6}}))
    assert dead["status"] == "no information" and math.isnan(dead["ratio"])


def test_two_studies_decide_nothing():
    t = table({"a": {"w": [[10], [12]], "v": [[5], [6]]},
               "b": {"w": [[100], [120]], "v": [[50], [60]]}})
    c = one_claim(t)
    assert c["verdict"] == "too few studies" and math.isnan(c["ratio"])
    assert c["information"]["w"].startswith("too few studies (2 shared, 5 needed")


def test_missing_studies_are_left_out_not_counted_as_misses():
    """Identical rules; b's studies 3-9 not in the table yet (an interrupted run)."""
    rng = np.random.default_rng(3)
    same = {w: [[float(x), float(y)] for x, y in rng.integers(10, 90, (10, 2))]
            for w in ("w", "v")}
    t = table({"a": same, "b": {w: s[:3] for w, s in same.items()}})
    c = one_claim(t)
    assert c["verdict"] == "too few studies"
    assert "3 shared" in c["information"]["w"] and "b lacks 7 of the studies" in \
        c["information"]["w"]
    # with 6 shared studies they are compared on those only: identical, ratio 1
    t6 = table({"a": same, "b": {w: s[:6] for w, s in same.items()}})
    assert compare(t6)["ratio"] == 1.0
    # a trial only one rule ran is not compared either
    extra = pd.concat([t6, table({"a": {"w": [[1]]}})[lambda f: f.trial == 0].assign(
        trial=5)])
    assert compare(extra)["ratio"] == 1.0


@pytest.mark.parametrize("column, value", [("budget_steps", np.nan), ("eval_every", np.nan),
                                           ("study", np.nan), ("target", np.nan),
                                           ("eval_every", 0)])
def test_a_nan_budget_period_study_or_target_is_refused(column, value):
    t = table({"a": {"w": [[10]] * 5}, "b": {"w": [[20]] * 5}})
    t.loc[3, column] = value
    with pytest.raises(verdicts.ResultsError, match=f"^{column}=.* in row 3 .*finite"):
        compare(t)


def test_a_missing_column_is_refused_by_name():
    t = table({"a": {"w": [[10]] * 5}, "b": {"w": [[20]] * 5}}).drop(columns="eval_every")
    with pytest.raises(verdicts.ResultsError, match="column\\(s\\) eval_every missing"):
        compare(t)


# --------------------------------------------------------------------- the family
def test_holds_reversed_equivalent_inconclusive_in_one_family():
    rng = np.random.default_rng(4)
    base = {f"w{i}": [[float(x)] for x in rng.integers(20, 80, 8)] for i in range(3)}

    def scaled(f, noise):
        return {w: [[s[0] * f * math.exp(rng.normal(0, noise))] for s in st]
                for w, st in base.items()}
    t = table({"fast": scaled(0.5, 0.1), "slow": base, "same": scaled(1.0, 0.02),
               "noisy": scaled(1.0, 1.5)})
    fam = (("x", (("fast beats slow", "fast", "slow"), ("slow beats fast", "slow", "fast"),
                  ("same", "same", "slow"), ("noisy", "noisy", "slow"))),)
    f = claims.claims_frame(t, {}, sims=0, families=fam).set_index("claim")
    assert f.loc["fast beats slow", "verdict"] == "holds"
    assert f.loc["slow beats fast", "verdict"] == "reversed"
    assert f.loc["same", "verdict"] == "equivalent"
    assert f.loc["noisy", "verdict"] == "inconclusive"
    assert (f["m"] == 4).all()
    # the level is Holm's adjusted p of the test that decided
    assert f.loc["fast beats slow", "level"] == pytest.approx(
        stats.holm(f["p"].to_numpy())[0])
    text = claims.claims_table(f.reset_index())
    assert "holds (fast faster; family level" in text and "equivalent within ±15%" in text
    assert "inconclusive (family p: " in text and "for equivalence)" in text


def test_a_design_that_cannot_reach_the_family_level_reads_too_few_studies():
    # one workload, 5 shared studies, a always 2x faster: t says p = 0, but 5 signs can
    # say no better than 2/32 = 0.0625 > 0.05
    t = table({"a": {"w": [[10]] * 5}, "b": {"w": [[20]] * 5}})
    c = one_claim(t)
    assert c["verdict"] == "too few studies" and "no test on so few" in c["why"]
    t10 = table({"a": {"w": [[10]] * 10}, "b": {"w": [[20]] * 10}})
    assert one_claim(t10)["verdict"] == "holds"


def test_whole_curve_runs_get_the_best_value_endpoint():
    t = table({"a": {"w": [[10, 30]] * 6}, "b": {"w": [[20, 40]] * 6}})
    t["steps_run"] = BUDGET  # no trial stopped at its target
    t["best_value"] = np.where(t["optimizer"] == "a", 0.9, 0.8) + 0.01 * t["study"]
    assert claims.whole_curve(t)
    f = claims.claims_frame(t, {"w": True}, sims=0,
                            families=(("x", (("a beats b", "a", "b"),)),))
    assert f["best"].iloc[0] > 0 and f["best_verdict"].iloc[0] == "holds"
    t.loc[0, "steps_run"] = 10
    assert not claims.whole_curve(t)
