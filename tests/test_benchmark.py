"""``python -m experiments.benchmark``: sampler, config checks, the noisy quadratic, and a
tiny run through MLflow (twins identical, a rerun skips what is done)."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from experiments import benchmark
from experiments.data import noisy_quadratic
from experiments.core import registry

CONF = Path(__file__).resolve().parents[1] / "conf"


def cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("benchmark", overrides=list(overrides))


# ------------------------------------------------------------------------- sampler
def test_sampler_is_reproducible_and_inside_the_search_space():
    for rule in registry.rules():
        space = registry.lab(rule.name).search_space
        a = benchmark.sample(space, 6, 3, "digits_mlp", 1)
        assert a == benchmark.sample(space, 6, 3, "digits_mlp", 1)
        assert a != benchmark.sample(space, 6, 3, "digits_mlp", 2)
        assert a != benchmark.sample(space, 6, 4, "digits_mlp", 1)
        assert a != benchmark.sample(space, 6, 3, "mnist5k_cnn", 1)  # fresh per workload
        for point in a:
            assert set(point) == set(space)
            for name, value in point.items():
                lo, hi = space[name].value_range()
                assert lo <= value <= hi, (rule.name, name, value)


def test_sampler_scales():
    dim = registry.lab("momentum").search_space["momentum"]  # log1m
    assert dim.scale == "log1m"
    assert benchmark.to_value(0.0, dim) == pytest.approx(1 - dim.low)
    assert benchmark.to_value(1.0, dim) == pytest.approx(1 - dim.high)
    lr = registry.lab("sgd").search_space["learning_rate"]  # log
    mid = benchmark.to_value(0.5, lr)
    assert mid == pytest.approx(math.sqrt(lr.low * lr.high))
    # many points spread evenly over the decades (quasi-random, not clumped)
    values = [p["learning_rate"] for p in benchmark.sample({"learning_rate": lr}, 64, 0, "w", 0)]
    counts, _ = np.histogram(np.log(values), bins=4,
                             range=(math.log(lr.low), math.log(lr.high)))
    assert counts.tolist() == [16, 16, 16, 16]


def quantile(value, dim):
    """Where ``value`` sits in ``dim`` (the inverse of ``to_value``)."""
    lo, hi = math.log(dim.low), math.log(dim.high)
    x = 1 - value if dim.scale == "log1m" else value
    return (math.log(x) - lo) / (hi - lo)


def test_rules_share_each_study_in_quantile_space():
    opts = benchmark.select_optimizers(["sgd", "momentum", "adam"])
    w = benchmark.load_workload("digits_mlp")
    specs = benchmark.plan_trials([w], opts, "tuned", trials=4, studies=2, seed=0)
    by = {(s.optimizer.name, s.study, s.trial): s for s in specs}
    for study in range(2):
        for trial in range(4):
            sgd, mom, adam = (by[(o, study, trial)] for o in ("sgd", "momentum", "adam"))
            assert sgd.seed == mom.seed == adam.seed
            u = [quantile(s.hp["learning_rate"], s.optimizer.search_space["learning_rate"])
                 for s in (sgd, mom, adam)]
            assert u == pytest.approx([u[0]] * 3, abs=1e-9)
            # the second coordinate: momentum's α and Adam's β1 (both log1m)
            assert quantile(mom.hp["momentum"], mom.optimizer.search_space["momentum"]) \
                == pytest.approx(quantile(adam.hp["beta_1"],
                                          adam.optimizer.search_space["beta_1"]), abs=1e-9)
    seeds = {(s.study, s.trial): s.seed for s in specs}
    assert len(set(seeds.values())) == 8  # a fresh seed per study and trial


def test_calibration_draws_are_disjoint_from_the_benchmarks():
    opts = benchmark.select_optimizers(["keras_momentum"])
    w = benchmark.load_workload("digits_mlp")
    tuned = benchmark.plan_trials([w], opts, "tuned", trials=8, studies=5, seed=0)
    cal = benchmark.plan_trials([w], opts, "calibrate", trials=8, studies=1, seed=0)
    seeds = benchmark.plan_trials([w], opts, "defaults", trials=1, studies=5, seed=0,
                                  stream="calibrate_seeds")
    assert not {json.dumps(s.hp) for s in cal} & {json.dumps(s.hp) for s in tuned}
    assert not ({s.seed for s in cal} | {s.seed for s in seeds}) & {s.seed for s in tuned}


def test_twins_get_the_same_points_and_seeds():
    opts = benchmark.select_optimizers(["momentum", "keras_momentum"])
    w = benchmark.load_workload("digits_mlp")
    specs = benchmark.plan_trials([w], opts, "tuned", trials=3, studies=2, seed=0)
    custom = [(s.study, s.trial, s.seed, s.hp) for s in specs if s.optimizer.name == "momentum"]
    keras = [(s.study, s.trial, s.seed, s.hp) for s in specs
             if s.optimizer.name == "keras_momentum"]
    assert custom == keras and len(custom) == 6
    assert len({s.key() for s in specs}) == 12


# ------------------------------------------------------------------------- config
@pytest.mark.parametrize("override, message", [
    ("mode=bogus", "mode='bogus' is not valid: choose one of benchmark, tuned, defaults, "
                   "calibrate"),
    ("workloads=[nope]", "workload 'nope' does not exist: choose from"),
    ("optimizers=[adam,nadamx]", "optimizers: 'nadamx' not known: choose from sgd"),
    ("optimizers=twins", "optimizers='twins' is not valid: give a list of options or one of "
                         "custom, all, exact_twins"),
    ("shard=2/2", "shard='2/2' is not valid"),
    ("preset.tuned.trials=0", "preset.tuned.trials=0 must be an integer in [1, 10000]"),
    ("seed=-1", "seed=-1 must be an integer in [0, 4294967295]"),
    ("scoring.r_max=0.5", "scoring.r_max=0.5 must be a number in (1, "),
    ("scoring.level=1", "scoring.level=1 must be a number in (0, 1)"),
    ("scoring.delta=1", "scoring.delta=1 must be a number in (0, 1)"),
    ("scoring.power_sims=-1", "scoring.power_sims=-1 must be an integer in [0, 1000000]"),
    ("workers=0", "workers=0 must be an integer in [1, 512]"),
    ("eval_every=0", "eval_every=0 must be an integer in [1, 10000000]"),
    ("+nope=1", "nope is not a key of the benchmark's config: valid keys are mode,"),
    ("+preset.tuned.k=2", "preset.tuned.k is not a key of the benchmark's config: valid keys "
                          "under preset.tuned are trials, studies"),
])
def test_bad_config_is_one_line(override, message):
    with pytest.raises(benchmark.BenchmarkError) as err:
        benchmark.settings(cfg(override, "tracking.enabled=false"))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("argv, message", [
    (["+nope=1"], "Error in config: nope is not a key of the benchmark's config"),
    (["seed=-1"], "Error in config: seed=-1 must be an integer in [0, 4294967295]"),
    (["preset=nope"], "Error in config: preset=nope is not an option: choose one of default, "
                      "full, smoke, twins"),
    (["scoring.r_max=0.5"], "Error in config: scoring.r_max=0.5 must be a number in (1, "),
    (["nope=1"], "nope"),
    (["-m", "seed=0,-1"], "Error in config: seed=-1 must be an integer in [0, 4294967295]"),
])
def test_the_command_line_refuses_through_the_cli_check(argv, message, capsys):
    from experiments.core.cli import check_command_line

    with pytest.raises(SystemExit) as exit_:
        check_command_line("benchmark", benchmark.check, argv + ["tracking.enabled=false"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_refused_command_loads_no_tensorflow_and_leaves_no_run(tmp_path):
    code = ("import sys, runpy; sys.argv = ['benchmark', 'seed=-1', "
            f"'tracking.uri=sqlite:///{tmp_path}/mlflow.db', 'output_dir={tmp_path}/out']\n"
            "try:\n    runpy.run_module('experiments.benchmark', run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    assert 'tensorflow' not in sys.modules and 'mlflow' not in sys.modules\n"
            "    raise\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=CONF.parent, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(CONF.parent)})
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == "Error in config: seed=-1 must be an integer in [0, 4294967295]"
    assert list(tmp_path.iterdir()) == []


def test_presets_are_sized_as_documented():
    for name, check in (("default", lambda p, s: len(s.workloads) >= 5
                         and p["tuned"]["trials"] >= 8 and p["tuned"]["studies"] >= 5
                         and p["at_defaults"]["seeds"] == 5
                         and [o.name for o in s.optimizers] == list(registry.rule_names())),
                        ("smoke", lambda p, s: len(benchmark.exact_pairs(s.optimizers)) >= 1),
                        ("twins", lambda p, s: set(benchmark.exact_pairs(s.optimizers))
                         == {o.rule.name for o in s.optimizers}),
                        ("full", lambda p, s: len(s.workloads) == 7)):
        s = benchmark.settings(cfg(f"preset={name}", "tracking.enabled=false"))
        assert s.preset["at_defaults"]["seeds"] % 2 == 1, name
        assert check(s.preset, s), name
    models = {benchmark.load_workload(w).model["name"]
              for w in benchmark.settings(cfg("tracking.enabled=false")).preset["workloads"]}
    assert {"logreg", "mlp", "cnn"} <= {m.replace("mnist1d_", "") for m in models}


def test_every_workload_states_its_protocol():
    names = benchmark.workload_names()
    assert len(names) >= 7
    for name in names:
        w = benchmark.load_workload(name)
        assert w.steps >= 1 and w.batch_size >= 1 and w.metric in benchmark.METRICS
        assert w.target is not None and "calibrated" in w.target_provenance, name
        assert "benchmark-protocol.md" in w.target_provenance, name


# ------------------------------------------------------------------------- noisy quadratic
def test_noisy_quadratic_spectrum_and_loss():
    q = noisy_quadratic.hessian()
    assert np.allclose(q, q.T)
    eig = np.sort(np.linalg.eigvalsh(q))
    assert ((eig[:90] >= 0) & (eig[:90] <= 1)).all()
    assert ((eig[90:] >= 30) & (eig[90:] <= 60)).all()
    x = np.random.default_rng(0).normal(0, 0.6, (50, 100))
    theta = np.ones(100)
    direct = np.mean([0.5 * (theta - xi) @ q @ (theta - xi) for xi in x])
    assert noisy_quadratic.loss(theta, x, q) == pytest.approx(direct)


def test_noisy_quadratic_model_gradient_is_q_times_theta_minus_mean():
    import tensorflow as tf

    from experiments.models import build_model

    model = build_model("noisy_quadratic", (100,), 2)
    x = np.random.default_rng(1).normal(0, 0.6, (32, 100)).astype(np.float32)
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = tf.add_n(model.losses)
    (grad,) = tape.gradient(loss, model.trainable_variables)
    q = noisy_quadratic.hessian()
    assert logits.shape == (32, 2) and not np.any(logits.numpy())
    assert float(loss) == pytest.approx(noisy_quadratic.loss(np.ones(100), x, q), rel=1e-5)
    np.testing.assert_allclose(grad.numpy(), q @ (1.0 - x.mean(axis=0)), rtol=1e-4, atol=1e-4)


def test_noisy_quadratic_excess_loss_is_the_population_loss_above_the_floor():
    q = noisy_quadratic.hessian()
    theta = np.random.default_rng(2).normal(0, 0.3, 100)
    x = np.random.default_rng(3).normal(0, noisy_quadratic.NOISE, (200000, 100))
    floor = 0.5 * noisy_quadratic.NOISE ** 2 * np.trace(q)
    population = noisy_quadratic.loss(theta, x, q)  # Monte Carlo
    assert noisy_quadratic.excess_loss(theta, q) == pytest.approx(population - floor, rel=0.02)
    assert noisy_quadratic.excess_loss(np.zeros(100), q) == 0.0

    from experiments.models import build_model

    model = build_model("noisy_quadratic", (100,), 2)
    layer = model.get_layer("quadratic")
    layer.theta.assign(theta.astype(np.float32))
    assert float(layer.excess_loss()) == pytest.approx(noisy_quadratic.excess_loss(theta, q),
                                                       rel=1e-5)


# ------------------------------------------------------------------------- trials
def tiny_workload(tmp_path, name="breast_cancer_logreg", target=None):
    """A copy of a workload in its own folder, with ``target`` (None: the calibrated one)."""
    folder = tmp_path / "workload"
    folder.mkdir(exist_ok=True)
    text = (CONF / "workload" / f"{name}.yaml").read_text()
    if target is not None:
        text = "\n".join(f"target: {target}" if line.startswith("target:") else line
                         for line in text.splitlines()) + "\n"
    (folder / f"{name}.yaml").write_text(text)
    return folder


#: rules whose hyperparameters the engine holds in variables (one trace for all trials)
TAKE_VARIABLES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "nadam", "lion",
                  "adamw", "schedule_free_adamw", "muon")


@pytest.mark.parametrize("rule, workload", [
    *((rule, "breast_cancer_logreg") for rule in registry.rule_names()),
    # the logistic regression's one layer is Muon's AdamW part: its Newton-Schulz on an MLP
    ("muon", "digits_mlp")])
def test_the_fast_path_gives_the_trainers_steps_and_values(rule, workload):
    """Every rule of the registry: the engine (one trace, hyperparameters as variables,
    weights and slots reset) against experiments.train.trainer, trial by trial."""
    from experiments.benchmark.engine import Engine
    from experiments.benchmark.trials import DataCache, run_trial_with_trainer

    w = benchmark.load_workload(workload)
    opt = benchmark.select_optimizers([rule])
    specs = benchmark.plan_trials([w], opt, "tuned", trials=3, studies=1, seed=0, budget=0.25)
    data = DataCache()
    engine = Engine(w, opt[0], data.get(w), [s.hp for s in specs])
    for spec in specs:
        fast = engine.run(spec)
        ref = run_trial_with_trainer(spec, data)
        assert fast["curve"]["step"] == ref["curve"]["step"], spec.label()
        assert fast["steps_to_target"] == ref["steps_to_target"], spec.label()
        assert fast["diverged"] == ref["diverged"]
        if not ref["diverged"]:
            np.testing.assert_allclose(fast["curve"]["value"], ref["curve"]["value"],
                                       rtol=2e-4, atol=1e-6, err_msg=spec.label())
            assert fast["best_value"] == pytest.approx(ref["best_value"], rel=2e-4)
    if rule in TAKE_VARIABLES:  # a rule added later may be retraced: slower, same numbers
        assert fast["path"] == "variables", "the rule's hyperparameters are no longer variables"


def test_an_optimizer_that_cannot_take_variables_is_retraced_with_the_same_result(monkeypatch):
    from experiments.benchmark.engine import Engine
    from experiments.benchmark.trials import DataCache

    w = benchmark.load_workload("breast_cancer_logreg")
    opt = benchmark.select_optimizers(["adam"])
    specs = benchmark.plan_trials([w], opt, "tuned", trials=2, studies=1, seed=1, budget=0.2)
    data = DataCache()
    fast = [Engine(w, opt[0], data.get(w), [s.hp for s in specs]).run(s) for s in specs]
    monkeypatch.setattr(Engine, "_tunable", lambda self, a, b: None)
    engine = Engine(w, opt[0], data.get(w), [s.hp for s in specs])
    slow = [engine.run(s) for s in specs]
    assert [r["path"] for r in slow] == ["retraced"] * 2
    for a, b in zip(fast, slow):
        assert a["steps_to_target"] == b["steps_to_target"]
        np.testing.assert_allclose(a["curve"]["value"], b["curve"]["value"], rtol=1e-5)


def test_an_evaluation_point_is_evaluated_and_the_weights_restored(monkeypatch):
    """An optimizer that declares an evaluation point (``evaluates_at`` and
    ``evaluation_point(variables)``) is evaluated there (here: the zero weights, where the
    logistic regression's loss is ln 2), and trains on its weights."""
    import keras

    from experiments.benchmark.engine import Engine
    from experiments.benchmark.trials import DataCache, run_trial_with_trainer

    cls = registry.rule("sgd").load_class()
    monkeypatch.setattr(cls, "evaluation_point",
                        lambda self, variables: [keras.ops.zeros_like(v) for v in variables],
                        raising=False)
    monkeypatch.setattr(cls, "evaluates_at", "zero")
    w = benchmark.load_workload("breast_cancer_logreg")
    w.target = None
    opt = benchmark.select_optimizers(["sgd"])
    specs = benchmark.plan_trials([w], opt, "tuned", trials=2, studies=1, seed=0, budget=0.1)
    data = DataCache()
    engine = Engine(w, opt[0], data.get(w), [s.hp for s in specs])
    for row in (engine.run(specs[0]), run_trial_with_trainer(specs[0], data)):
        assert row["evaluated_at"] == "evaluation_point"
        assert row["curve"]["value"] == pytest.approx([math.log(2)] * len(row["curve"]["value"]))
    assert any(np.any(v.numpy()) for v in engine.model.trainable_variables)  # restored


# ------------------------------------------------------------------------- a tiny run
@pytest.mark.slow
def test_tiny_run_parent_and_children_twins_identical_and_resume(tmp_path):
    folder = tiny_workload(tmp_path, "breast_cancer_logreg")
    overrides = ["preset=smoke", "workloads=[breast_cancer_logreg]", f"workload_dir={folder}",
                 "optimizers=[sgd,keras_sgd,momentum,keras_momentum]", "preset.budget=0.2",
                 "preset.tuned.trials=2", "preset.tuned.studies=2", "preset.at_defaults.seeds=1",
                 f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", "workers=1",
                 f"output_dir={tmp_path}/out", "scoring.bootstrap=50"]
    s = benchmark.settings(cfg(*overrides))
    out, err = io.StringIO(), io.StringIO()
    board = benchmark.run_benchmark(s, out=out, err=err)
    assert "benchmark 20/20 trials" in err.getvalue()
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(results) == 20  # 4 optimizers x (2 x 2 tuned + 1 defaults)
    assert {"workload", "optimizer", "ruleset", "study", "trial", "steps_to_target",
            "seconds_to_target", "best_value", "diverged", "seconds", "eval_seconds",
            "learning_rate", "momentum", "budget_steps", "eval_every"} <= set(results.columns)
    # Keras's SGD reads its momentum in Python (`if self.momentum != 0`): retraced
    paths = results.groupby("optimizer")["path"].agg(set)
    assert paths.to_dict() == {"sgd": {"variables"}, "keras_sgd": {"variables"},
                               "momentum": {"variables"}, "keras_momentum": {"retraced"}}
    keys = ["ruleset", "study", "trial"]
    for rule in ("sgd", "momentum"):
        a = results[results.optimizer == rule].set_index(keys)
        b = results[results.optimizer == f"keras_{rule}"].set_index(keys)
        pd.testing.assert_series_equal(a["steps_to_target"], b["steps_to_target"])
        assert a["learning_rate"].equals(b["learning_rate"])
    assert "| sgd / keras_sgd | 5 | 0 |" in board
    assert "**Claims: the paired verdicts**" in board and "momentum / sgd" in board
    claims = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert set(claims["verdict"]) == {"too few studies"}  # 2 studies decide nothing
    assert sorted(p.name for p in (tmp_path / "out" / "plots").glob("*.png")) == [
        "budget_curves.png", "lr_sensitivity.png", "profiles.png", "time_to_target.png"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=s.uri)
    exp = client.get_experiment_by_name("benchmark")
    (parent,) = client.search_runs([exp.experiment_id], "tags.run_type = 'benchmark'")
    assert parent.info.status == "FINISHED" and "cells_at_target" in parent.data.metrics
    children = client.search_runs([exp.experiment_id], "tags.run_type = 'benchmark_trial'")
    assert len(children) == 20 and {r.info.status for r in children} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    history = client.get_metric_history(children[0].info.run_id, "val_loss")
    assert history[0].step == 0 and len(history) >= 2

    # a kill: three trials never got their FINISHED run; a rerun trains exactly those
    lost = children[:3]
    for r in lost:
        client.delete_run(r.info.run_id)
    err2 = io.StringIO()
    board2 = benchmark.run_benchmark(benchmark.settings(cfg(*overrides)), out=io.StringIO(),
                                     err=err2)
    assert "17 of 20 trials already finished, skipped" in err2.getvalue()
    children = client.search_runs([exp.experiment_id], "tags.run_type = 'benchmark_trial'")
    assert len(children) == 20
    assert len({r.data.tags["trial_key"] for r in children}) == 20
    again = pd.read_csv(tmp_path / "out" / "results.csv")
    cols = ["workload", "optimizer", "ruleset", "study", "trial", "steps_to_target",
            "best_value"]
    pd.testing.assert_frame_equal(results[cols], again[cols])
    assert board2.split("\n", 1)[1].split("**Workloads**")[0] == \
        board.split("\n", 1)[1].split("**Workloads**")[0]
    assert len(client.search_runs([exp.experiment_id], "tags.run_type = 'benchmark'")) == 1

    # the README's tables and figures come back from the stored run alone
    from experiments.benchmark import report

    (tmp_path / "out" / "leaderboard.md").write_text(board.split("\n", 1)[0] + "\n")
    shutil.rmtree(tmp_path / "out" / "plots")
    report.main([str(tmp_path / "out"), "--docs", str(tmp_path / "docs"), "--bootstrap", "50"])
    assert (tmp_path / "out" / "leaderboard.md").read_text().split("**Workloads**")[0] == \
        board.split("**Workloads**")[0]
    assert sorted(p.name for p in (tmp_path / "docs").glob("*.png")) == [
        "budget_curves.png", "lr_sensitivity.png", "profiles.png", "time_to_target.png"]


@pytest.mark.slow
def test_two_worker_processes_give_the_same_table(tmp_path):
    folder = tiny_workload(tmp_path, "breast_cancer_logreg")
    common = ["preset=smoke", "workloads=[breast_cancer_logreg]", f"workload_dir={folder}",
              "optimizers=[sgd,adam]", "preset.budget=0.1", "preset.tuned.trials=2",
              "preset.tuned.studies=1", "preset.at_defaults.seeds=1", "tracking.enabled=false",
              "scoring.bootstrap=20"]
    tables = []
    for workers in (1, 2):
        s = benchmark.settings(cfg(*common, f"workers={workers}",
                                   f"output_dir={tmp_path}/out{workers}"))
        benchmark.run_benchmark(s, out=io.StringIO(), err=io.StringIO())
        tables.append(pd.read_csv(tmp_path / f"out{workers}" / "results.csv")[
            ["optimizer", "ruleset", "study", "trial", "steps_to_target", "best_value"]])
    pd.testing.assert_frame_equal(*tables)


def test_noisy_quadratic_trains_with_the_trainer():
    """The trainer's training and validation losses are the quadratic (plus the constant
    ln 2 of the dummy labels' cross-entropy)."""
    import dataclasses

    from experiments.data import load_dataset
    from experiments.models import build_model
    from experiments.core.optim import build_optimizer
    from experiments.train.trainer import Trainer, fit

    splits = load_dataset("noisy_quadratic", standardize=False)
    model = build_model("noisy_quadratic", splits.input_shape, splits.num_classes)
    opt = build_optimizer({"name": "sgd", "implementation": "keras", "learning_rate": 0.01})
    trainer = Trainer(model, opt, splits.x_train, splits.y_train)
    q = noisy_quadratic.hessian()
    before = trainer.evaluate(splits.x_val, splits.y_val)[0]
    assert before == pytest.approx(math.log(2) + noisy_quadratic.loss(np.ones(100),
                                                                        splits.x_val, q), rel=1e-5)
    history = fit(trainer, dataclasses.replace(splits), epochs=2, batch_size=128, seed=0)
    theta = model.get_layer("quadratic").theta.numpy()
    after = history.epoch["val_loss"][-1]
    assert after == pytest.approx(math.log(2) + noisy_quadratic.loss(theta, splits.x_val, q),
                                  rel=1e-5)
    assert after < before / 2


def test_twin_defaults_and_exact_pairs_follow_the_registry():
    opts = benchmark.all_optimizers()
    names = [o.name for o in opts]
    assert names[:2] == ["sgd", "keras_sgd"] and len(names) == len(set(names))
    for o in opts:
        hp = o.defaults()
        assert set(hp) >= set(o.search_space)
        if o.implementation == "keras":
            # the twin's fixed values (NAdam's psi) are in force, so it is never refused
            assert o.rule.keras_refusal(hp) is None, o.name
    pairs = benchmark.exact_pairs(opts)
    for custom, keras in pairs.items():
        rule = registry.rule(custom)
        assert rule.keras.exact and keras == f"keras_{custom}"
        assert all(rule.defaults().get(k, v) == v for k, v in rule.keras.fixed.items())
    assert {"sgd", "momentum", "nesterov"} <= set(pairs)
    assert not {"adagrad", "rmsprop", "adam"} & set(pairs)  # not the same maths
