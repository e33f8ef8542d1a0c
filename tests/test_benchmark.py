"""``python -m experiments.benchmark``: sampler, config checks, the noisy quadratic, and a
tiny run through MLflow (twins identical, a rerun skips what is done)."""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from experiments import benchmark, noisy_quadratic, registry

CONF = Path(__file__).resolve().parents[1] / "conf"


def cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("benchmark", overrides=list(overrides))


# ------------------------------------------------------------------------- sampler
def test_sampler_is_reproducible_and_inside_the_search_space():
    for rule in registry.rules():
        space = rule.search_space
        a = benchmark.sample(space, 6, seed=3, study=1)
        assert a == benchmark.sample(space, 6, seed=3, study=1)
        assert a != benchmark.sample(space, 6, seed=3, study=2)
        assert a != benchmark.sample(space, 6, seed=4, study=1)
        for point in a:
            assert set(point) == set(space)
            for name, value in point.items():
                lo, hi = space[name].value_range()
                assert lo <= value <= hi, (rule.name, name, value)


def test_sampler_scales():
    dim = registry.rule("momentum").search_space["momentum"]  # log1m
    assert dim.scale == "log1m"
    assert benchmark.to_value(0.0, dim) == pytest.approx(1 - dim.low)
    assert benchmark.to_value(1.0, dim) == pytest.approx(1 - dim.high)
    lr = registry.rule("sgd").search_space["learning_rate"]  # log
    mid = benchmark.to_value(0.5, lr)
    assert mid == pytest.approx(math.sqrt(lr.low * lr.high))
    # many points spread evenly over the decades (quasi-random, not clumped)
    values = [p["learning_rate"] for p in benchmark.sample({"learning_rate": lr}, 64, 0, 0)]
    counts, _ = np.histogram(np.log(values), bins=4,
                             range=(math.log(lr.low), math.log(lr.high)))
    assert counts.tolist() == [16, 16, 16, 16]


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
    ("shard=2/2", "shard='2/2' is not valid"),
    ("preset.tuned.trials=0", "preset.tuned.trials=0 must be an integer >= 1"),
])
def test_bad_config_is_one_line(override, message):
    with pytest.raises(benchmark.BenchmarkError) as err:
        benchmark.settings(cfg(override, "tracking.enabled=false"))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_workload_states_its_protocol():
    names = benchmark.workload_names()
    assert len(names) >= 7
    for name in names:
        w = benchmark.load_workload(name)
        assert w.steps >= 1 and w.batch_size >= 1 and w.metric in benchmark.METRICS
        assert w.target is not None and "calibrated" in w.target_provenance, name


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


# ------------------------------------------------------------------------- a tiny run
@pytest.mark.slow
def test_tiny_run_twins_identical_and_rerun_skips(tmp_path):
    folder = tmp_path / "workload"
    folder.mkdir()
    text = (CONF / "workload" / "digits_mlp.yaml").read_text()
    (folder / "digits_mlp.yaml").write_text(
        "\n".join("target: 0.7" if line.startswith("target:") else line
                  for line in text.splitlines()) + "\n")
    overrides = ["preset=smoke", "workloads=[digits_mlp]", f"workload_dir={folder}",
                 "optimizers=[sgd,keras_sgd,momentum,keras_momentum]", "preset.budget=0.2",
                 "preset.tuned.trials=1", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                 f"output_dir={tmp_path}/out", "scoring.bootstrap=20"]
    s = benchmark.settings(cfg(*overrides))
    out, err = io.StringIO(), io.StringIO()
    board = benchmark.run_benchmark(s, out=out, err=err)
    assert "benchmark 8/8 trials" in err.getvalue()
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(results) == 8  # 4 optimizers x (1 tuned + 1 defaults)
    assert {"workload", "optimizer", "ruleset", "study", "trial", "steps_to_target",
            "seconds_to_target", "best_value", "diverged", "learning_rate",
            "momentum"} <= set(results.columns)
    keys = ["ruleset", "study", "trial"]
    for rule in ("sgd", "momentum"):
        a = results[results.optimizer == rule].set_index(keys)
        b = results[results.optimizer == f"keras_{rule}"].set_index(keys)
        pd.testing.assert_series_equal(a["steps_to_target"], b["steps_to_target"])
        assert a["learning_rate"].equals(b["learning_rate"])
    assert "| sgd / keras_sgd | 2 | 0 |" in board
    assert results["steps_to_target"].notna().any()  # the target is reachable
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert set(scores.columns) >= {"ruleset", "optimizer", "score_steps", "score_steps_low",
                                   "score_steps_high", "score_seconds"}
    assert sorted(p.name for p in (tmp_path / "out" / "plots").glob("*.png")) == [
        "budget_curves.png", "lr_sensitivity.png", "profiles.png", "time_to_target.png"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=s.uri)
    exp = client.get_experiment_by_name("benchmark")
    runs = client.search_runs([exp.experiment_id], "tags.run_type = 'benchmark_trial'")
    assert len(runs) == 8 and {r.info.status for r in runs} == {"FINISHED"}
    history = client.get_metric_history(runs[0].info.run_id, "val_accuracy")
    assert history[0].step == 0 and len(history) >= 2

    err2 = io.StringIO()
    board2 = benchmark.run_benchmark(benchmark.settings(cfg(*overrides)), out=io.StringIO(),
                                     err=err2)
    assert "8 of 8 trials already finished, skipped" in err2.getvalue()
    assert "trials" not in err2.getvalue().split("skipped.", 1)[1]
    runs = client.search_runs([exp.experiment_id], "tags.run_type = 'benchmark_trial'")
    assert len(runs) == 8
    assert board2.split("\n", 1)[1] == board.split("\n", 1)[1]  # same tables
    again = pd.read_csv(tmp_path / "out" / "results.csv")
    pd.testing.assert_frame_equal(results, again)
    summaries = client.search_runs([exp.experiment_id], "tags.run_type = 'benchmark_summary'")
    assert len(summaries) == 2
    shutil.rmtree(tmp_path / "out")


def test_noisy_quadratic_trains_with_the_trainer():
    """The trainer's training and validation losses are the quadratic (plus the constant
    ln 2 of the dummy labels' cross-entropy)."""
    import dataclasses

    from experiments.data import load_dataset
    from experiments.models import build_model
    from experiments.optim import build_optimizer
    from experiments.trainer import Trainer, fit

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
        assert set(hp) >= set(o.rule.search_space)
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
