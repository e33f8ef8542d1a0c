"""The verdicts' error rates and power, measured by simulation (``experiments.benchmark.power``),
and the report command on hand-made tables, tried as a new user would."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from experiments.benchmark import claims, power, verdicts
from tests.light import ROOT, run_light

N_NULL = 4000


def test_the_default_design_has_a_calibrated_false_verdict_rate():
    """>= 2,000 null tables of the default design: decisive verdicts 5 % ± 1.5 %."""
    design = power.default_design()
    rate = power.false_rate(design, 0.05, N_NULL, seed=0)
    print(f"false decisive verdicts on {N_NULL} null tables: {rate:.2%}")
    assert 0.035 <= rate <= 0.065


def test_the_default_design_has_the_power_the_issue_asks_for():
    curve = power.power_curve(power.default_design(), 0.05, [0.8, 0.67], 2000, seed=1)
    p08, p067 = curve["power"].tolist()
    print(f"power at 0.8: {p08:.1%}, at 0.67: {p067:.1%}")
    assert p067 >= 0.90 and p08 >= 0.45
    assert (curve["wrong"] == 0).all()  # never the wrong direction at these effects


def test_the_design_matches_its_miss_rates_and_the_power_rises_with_the_effect():
    design = power.default_design()
    assert design.miss_rates() == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])
    t = power.simulate(design, [1.0], 8000, seed=2)[0]  # n, W, 2, S: study times
    # a study misses when all K = 8 of its trials do
    assert np.isinf(t).mean(axis=(0, 2, 3)) == pytest.approx(design.miss_rates() ** 8,
                                                               abs=0.01)
    assert np.isin(t[np.isfinite(t)] % 25, [0]).all()  # hits on the evaluation grid
    curve = power.power_curve(design, 0.05, power.RATIOS, 500, seed=3)
    assert np.all(np.diff(curve["power"]) <= 1e-12)  # ratios rise toward 1: power falls
    r80 = power.detectable(curve)
    assert 0.67 < r80 < 0.8  # between the two measured points above
    assert power.speed_ratio(curve, float(curve["effect"].iloc[5])) == pytest.approx(
        curve["ratio"].iloc[5])


def test_the_simulation_goes_through_the_reports_own_test():
    """A simulated table written out as trial rows gives the same effect and p-value
    through ``verdicts.compare`` as through the vectorised path."""
    design = power.default_design()
    t = power.simulate(design, [0.7], 1, seed=4)[0, 0]  # W, 2, S
    rows = []
    for wi, w in enumerate(design.workloads):
        for ri, o in enumerate("ab"):
            for s in range(10):
                for k, v in enumerate((t[wi, ri, s], math.inf)):
                    rows.append({"workload": w, "optimizer": o, "ruleset": "tuned",
                                 "study": s, "trial": k,
                                 "steps_to_target": v if math.isfinite(v) else None,
                                 "best_value": 0.5, "budget_steps": 1000, "eval_every": 25})
    c = verdicts.compare(pd.DataFrame(rows), "a", "b", "tuned", {})
    r = power.tested(design, t[None])
    assert math.log(c["ratio"]) == pytest.approx(float(r["mean"][0]))
    assert c["p"] == pytest.approx(float(r["p"][0]))


def test_estimate_recovers_a_design_from_its_own_trials():
    design = power.default_design(miss=(0.2, 0.6), studies=30, sigma=0.8, rho=0.5)
    rng = np.random.default_rng(5)
    rows = []
    for wi, w in enumerate(design.workloads):
        for s in range(30):
            for k in range(8):
                c = rng.standard_normal()
                for o in "ab":
                    z = math.sqrt(0.5) * c + math.sqrt(0.5) * rng.standard_normal()
                    steps = math.exp(design.mu[wi] + 0.8 * z)
                    hit = steps <= 1000
                    rows.append({"workload": w, "optimizer": o, "ruleset": "tuned",
                                 "study": s, "trial": k, "best_value": 0.5,
                                 "steps_to_target": math.ceil(steps / 25) * 25 if hit
                                 else None, "budget_steps": 1000, "eval_every": 25})
    got = power.estimate(pd.DataFrame(rows), "a", "b", "tuned", design.workloads, {})
    assert got.sigma == pytest.approx([0.8, 0.8], abs=0.12)
    assert got.miss_rates() == pytest.approx([0.2, 0.6], abs=0.05)
    assert got.rho == pytest.approx(0.5, abs=0.1)
    assert got.trials == 8 and got.studies.tolist() == [30, 30]


def test_the_power_command_prints_the_measured_numbers():
    out = subprocess.run([sys.executable, "-m", "experiments.benchmark.power", "--sims", "300"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "false decisive verdicts under the null:" in out.stdout
    assert "power at a per-trial speed ratio of 0.67:" in out.stdout and not out.stderr


def test_verdicts_and_power_stay_light():
    run_light("import experiments.benchmark.verdicts, experiments.benchmark.power, "
              "experiments.benchmark.claims, experiments.benchmark.report")


# ------------------------------------------------------------- tried as a new user would
def hand_table(studies_a: int, studies_b: int, speed_b: float = 1.0) -> pd.DataFrame:
    """Two real workloads, momentum against sgd, 2 trials per study."""
    rng = np.random.default_rng(6)
    rows = []
    for w, budget, every in (("breast_cancer_logreg", 300, 10), ("digits_mlp", 400, 10)):
        for o, n, f in (("momentum", studies_a, 1.0), ("sgd", studies_b, speed_b)):
            for s in range(n):
                for k in range(2):
                    steps = 10 * math.ceil(f * rng.uniform(5, 40))
                    rows.append({"workload": w, "optimizer": o, "ruleset": "tuned",
                                 "study": s, "trial": k, "steps_to_target": steps,
                                 "seconds_to_target": steps / 100, "best_value": 0.95,
                                 "diverged": False, "budget_steps": budget,
                                 "eval_every": every, "seconds": 1.0, "eval_seconds": 0.1,
                                 "steps_run": steps, "learning_rate": 0.1, "target": 0.9})
    return pd.DataFrame(rows)


def test_each_claim_gets_the_power_of_its_own_design():
    f = claims.claims_frame(hand_table(10, 10, speed_b=1.5), {}, sims=300).iloc[0]
    assert f["verdict"] == "holds" and f["m"] == 1
    assert 0.2 < f["detectable"] < 1 and 0 <= f["false_rate"] <= 0.15
    assert f["speed_low"] <= f["speed"] <= f["speed_high"] < 1
    assert f["design"].startswith("S = 10, K = 2, ρ = ")


def report_command(folder, *args):
    return subprocess.run([sys.executable, "-m", "experiments.benchmark.report", str(folder),
                           "--bootstrap", "50", "--sims", "200", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("studies_a, studies_b, why", [
    (2, 2, "too few studies (2 shared, 5 needed)"),
    (10, 3, "too few studies (3 shared, 5 needed; sgd lacks 7 of the studies the other ran)"),
])
def test_the_report_decides_nothing_from_too_little_and_says_why(tmp_path, studies_a,
                                                                  studies_b, why):
    # sgd 3x slower: with enough studies this would be a verdict
    hand_table(studies_a, studies_b, speed_b=3.0).to_csv(tmp_path / "results.csv", index=False)
    out = report_command(tmp_path, "--docs", str(tmp_path / "docs"))
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("| momentum accelerates"))
    assert "| too few studies (no workload with 5 shared studies) |" in line
    assert why in out.stdout
    page = (tmp_path / "docs" / "results.md").read_text()
    assert page.startswith("# Benchmark results") and why in page
    assert "![profiles](profiles.png)" in page and (tmp_path / "docs" / "profiles.png").is_file()
    # commentary outside the report's markers survives a rerun; the part inside is new
    (tmp_path / "docs" / "results.md").write_text(
        page.replace("<!-- report:start -->", "Our notes.\n\n<!-- report:start -->")
        .replace("too few studies (2", "stale") + "\nMore notes.\n")
    assert report_command(tmp_path, "--docs", str(tmp_path / "docs")).returncode == 0
    again = (tmp_path / "docs" / "results.md").read_text()
    assert again.count("Our notes.") == 1 and again.rstrip().endswith("More notes.")
    assert why in again and "stale" not in again
    full = claims.claims_frame(hand_table(10, 10, 3.0), {}, sims=0)
    assert full["verdict"].tolist() == ["holds"]  # the same table, complete, decides


@pytest.mark.slow
def test_the_report_refuses_a_nan_budget_in_one_line(tmp_path):
    t = hand_table(6, 6)
    t.loc[4, "budget_steps"] = np.nan
    t.to_csv(tmp_path / "results.csv", index=False)
    out = report_command(tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().startswith("Error in the results table: budget_steps=nan in "
                                         "row 4 (breast_cancer_logreg, momentum, tuned")
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "leaderboard.md").exists()  # nothing half-written
