"""``experiments.benchmark.scoring`` on trial tables written by hand (no training, no TensorFlow)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from experiments.benchmark import scoring

INF = math.inf


def table(times: dict[str, dict[str, list[list[float]]]], ruleset="tuned",
          budget: int = 100, every: int = 1, best: dict | None = None) -> pd.DataFrame:
    """{optimizer: {workload: [[trial times of study 0], [study 1], ...]}} -> trial rows
    (``best``: {optimizer: the best value of its every trial}, default 0.5)."""
    rows = []
    for optimizer, per_workload in times.items():
        for workload, studies in per_workload.items():
            for s, trials in enumerate(studies):
                for t, steps in enumerate(trials):
                    rows.append({"workload": workload, "optimizer": optimizer,
                                 "ruleset": ruleset, "study": s, "trial": t,
                                 "steps_to_target": None if steps == INF else steps,
                                 "seconds_to_target": None if steps == INF else steps / 100,
                                 "best_value": (best or {}).get(optimizer, 0.5),
                                 "diverged": False, "budget_steps": budget,
                                 "eval_every": every, "target": 0.9})
    return pd.DataFrame(rows)


def numeric_score(r: np.ndarray, r_max: float = 4.0) -> float:
    """The profile integrated on a fine grid with the trapezoid rule (AlgoPerf's way)."""
    taus = np.linspace(1.0, r_max, 300001)
    rho = (np.asarray(r)[:, None] <= taus[None, :]).mean(axis=0)
    return float(np.trapezoid(rho, taus) / (r_max - 1.0))


def test_study_time_is_the_fastest_trial_that_reached():
    assert scoring.study_time([10, INF, INF, 12, 9]) == 9
    assert scoring.study_time([10, INF, INF, INF, 9]) == 9  # no "3 of 5" rule
    assert scoring.study_time([math.nan, 7]) == 7  # NaN = not reached
    assert scoring.study_time([INF, INF]) == INF


def test_workload_time_is_the_lower_median_over_studies():
    assert scoring.workload_time([5, 7, INF]) == 7
    assert scoring.workload_time([5, INF, INF]) == INF
    assert scoring.workload_time([5, 9]) == 5  # even: the time half of the studies reached
    assert scoring.workload_time([5, INF]) == 5  # not numpy's median([5, inf]) = inf
    assert scoring.workload_time([3, 5, 9, INF]) == 5


def test_a_target_met_at_step_zero_counts_as_one_evaluation_period():
    t = table({"a": {"w": [[0]]}, "b": {"w": [[20]]}})
    t["eval_every"] = 10
    times = scoring.times_table(t)
    assert times.loc[("tuned", "a"), "w"] == 10 and times.loc[("tuned", "b"), "w"] == 20
    s = scoring.scores(t)
    assert np.isfinite(s.to_numpy()).all()
    assert s.loc[("tuned", "a"), "score_steps"] == 1.0
    assert s.loc[("tuned", "b"), "score_steps"] == pytest.approx((4 - 2) / 3)


def test_one_optimizer_best_everywhere_scores_one():
    t = table({"a": {"w1": [[10]], "w2": [[20]]}, "b": {"w1": [[20]], "w2": [[60]]}})
    s = scoring.scores(t)
    assert s.loc[("tuned", "a"), "score_steps"] == pytest.approx(1.0)
    # b: r = 2 and 3 -> (4-2)/3 and (4-3)/3, mean 0.5
    assert s.loc[("tuned", "b"), "score_steps"] == pytest.approx(0.5)
    assert s.loc[("tuned", "b"), "score_seconds"] == pytest.approx(0.5)


def test_ties_not_reached_and_r_max():
    t = table({"a": {"w1": [[10]], "w2": [[10]], "w3": [[INF]], "w4": [[10]]},
               "b": {"w1": [[10]], "w2": [[40]], "w3": [[INF]], "w4": [[39.9]]},
               "c": {"w1": [[INF]], "w2": [[INF]], "w3": [[INF]], "w4": [[INF]]}})
    times = scoring.times_table(t, "steps_to_target")
    r = scoring.ratios(times)
    assert r.loc[("tuned", "a")].tolist()[:2] == [1.0, 1.0]
    assert r.loc[("tuned", "b"), "w1"] == 1.0  # a tie is a tie: both r = 1
    assert np.isinf(r.loc[("tuned", "b"), "w3"])  # nobody reached w3: r = inf for all
    s = scoring.score(r)
    # a: w1, w2, w4 at r = 1, w3 never -> 3/4; b: w1 1, w2 at r_max counts 0, w4 just under
    assert s[0] == pytest.approx(0.75)
    assert s[1] == pytest.approx((1 + 0 + 0 + (4 - 3.99) / 3) / 4)
    assert s[2] == 0.0
    for row in r.to_numpy():
        assert scoring.score(row) == pytest.approx(numeric_score(row), abs=1e-4)


def test_profile_is_the_share_of_workloads_within_tau():
    r = pd.DataFrame([[1.0, 2.0, INF], [1.5, 1.0, 3.0]], index=["a", "b"])
    rho = scoring.profile(r, np.array([1.0, 1.5, 2.0, 3.0, 4.0]))
    assert rho.loc["a"].tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert rho.loc["b"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1.0, 1.0])


def test_rulesets_are_scored_apart():
    t = pd.concat([table({"a": {"w": [[10]]}, "b": {"w": [[20]]}}, "tuned"),
                   table({"a": {"w": [[40]]}, "b": {"w": [[20]]}}, "defaults")])
    s = scoring.scores(t)
    assert s.loc[("tuned", "a"), "score_steps"] == 1.0
    assert s.loc[("defaults", "b"), "score_steps"] == 1.0
    assert s.loc[("defaults", "a"), "score_steps"] == pytest.approx(2 / 3)


def test_bootstrap_bounds_bracket_the_point_and_collapse_without_spread():
    fixed = table({"a": {"w1": [[10], [10]]}, "b": {"w1": [[20], [20]]}})
    s = scoring.bootstrap_scores(fixed, n_boot=50)
    assert s.loc[("tuned", "b"), ["score_steps_low", "score_steps_high"]].tolist() == \
        pytest.approx([2 / 3, 2 / 3])
    noisy = table({"a": {"w1": [[10], [INF], [40]], "w2": [[5], [80], [INF]]},
                   "b": {"w1": [[20], [25], [INF]], "w2": [[INF], [10], [12]]}})
    s = scoring.bootstrap_scores(noisy, n_boot=300, seed=1)
    for opt in ("a", "b"):
        row = s.loc[("tuned", opt)]
        assert row.score_steps_low <= row.score_steps <= row.score_steps_high
    assert s.loc[("tuned", "a"), "score_steps_high"] > s.loc[("tuned", "a"), "score_steps_low"]
    again = scoring.bootstrap_scores(noisy, n_boot=300, seed=1)
    pd.testing.assert_frame_equal(s, again)


def test_paired_bootstrap_resamples_the_same_studies_for_every_rule():
    # two rules with identical results: every replicate gives both the same score
    same = {"w1": [[10], [INF], [40]], "w2": [[5], [80], [INF]]}
    t = table({"a": same, "b": same})
    draws = scoring.bootstrap_draws(t, n_boot=300, seed=0)
    d = draws[("score_steps", "tuned")]
    assert (d["a"] == d["b"]).all() and d["a"].nunique() > 1


def test_cells_at_target_counts_studies_with_a_hit():
    t = table({"a": {"w1": [[10, INF], [INF, INF]]}, "b": {"w1": [[INF, 3], [1, 2]]}})
    assert scoring.cells_at_target(t) == (3, 4)
    assert scoring.cells_at_target(t, ["a"]) == (1, 2)


def test_budget_curve_matches_the_best_of_k_expectation():
    # best of k draws with replacement from {0, 1}: 1 - 0.5^k
    curve = scoring.budget_curve([0.0, 1.0], 4, maximize=True, n_boot=40000, seed=0)
    assert curve["mean"].tolist() == pytest.approx([1 - 0.5 ** k for k in range(1, 5)],
                                                   abs=0.01)
    low = scoring.budget_curve([3.0, math.nan, 1.0], 2, maximize=False, n_boot=20000)
    # NaN counts as the worst (3): min of k draws from {3, 3, 1}
    assert low["mean"].tolist() == pytest.approx([1 + 2 * (2 / 3) ** k for k in (1, 2)],
                                                 abs=0.02)


def test_twin_check_reports_mismatches():
    t = table({"sgd": {"w": [[10, INF]]}, "keras_sgd": {"w": [[10, 20]]}})
    summary, bad = scoring.twin_check(t, {"sgd": "keras_sgd"})
    assert summary.to_dict("records") == [{"pair": "sgd / keras_sgd", "compared": 2,
                                           "mismatches": 1}]
    assert bad[["trial", "custom", "keras"]].values.tolist() == [[1, INF, 20.0]]
