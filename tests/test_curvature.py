"""Curvature diagnostics (experiments.curvature): the Hessian's extremes against the full
Hessian's exact eigenvalues on tiny models, and the trainer's measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments.train.config import register_schemas as register_train_schemas
from experiments.core.checks import ConfigError
from experiments.train.config import validate

register_train_schemas()

CONF = Path(__file__).resolve().parents[1] / "conf"

TOL = 1e-3


def _data(features=12, classes=4, n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = rng.integers(0, classes, n).astype(np.int32)
    return x, y


def _model(name, features, classes, **params):
    import keras

    from experiments.models import build_model

    keras.utils.set_random_seed(0)
    return build_model(name, (features,), classes, **params)


TINY_MODELS = [  # (model, params, features): at most 300 weights
    ("logreg", {}, 20),  # 84 weights
    ("mlp", {"depth": 2, "width": 8, "activation": "tanh"}, 12),  # 212 weights
]


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("name,params,features", TINY_MODELS, ids=["logreg", "mlp"])
@pytest.mark.slow
def test_extremes_match_the_full_hessian(name, params, features, loss):
    from experiments.curvature import FlatLoss, extreme_eigenvalues, flat_weights

    x, y = _data(features)
    model = _model(name, features, 4, **params)
    f = FlatLoss(model, x, y, loss)
    assert f.size <= 300
    theta = flat_weights(model)
    theta += 0.3 * np.random.default_rng(1).standard_normal(f.size)  # not only the init
    hessian = f.hessian(theta)
    assert np.allclose(hessian, hessian.T, atol=1e-5)
    exact = np.linalg.eigvalsh((hessian + hessian.T) / 2)
    low, high = extreme_eigenvalues(f, theta, iterations=40)  # fewer steps than weights
    assert abs(high - exact[-1]) <= TOL * abs(exact[-1])
    # cross-entropy's logreg has λ_min = 0 (the softmax's shift): error relative to |λ|max
    assert abs(low - exact[0]) <= TOL * max(abs(exact[0]), 1e-2 * abs(exact[-1]))
    if name == "mlp":
        assert exact[0] < 0  # the test covers a negative λ_min, not only a convex case


def test_hessian_vector_product_is_the_hessian_times_the_vector():
    from experiments.curvature import FlatLoss, flat_weights

    x, y = _data(12)
    model = _model("mlp", 12, 4, depth=1, width=6, activation="sigmoid")
    f = FlatLoss(model, x, y, "mse")
    theta = flat_weights(model)
    v = np.random.default_rng(2).standard_normal(f.size)
    assert np.allclose(f.hvp(theta, v), f.hessian(theta) @ v, rtol=1e-4, atol=1e-5)
    # and the gradient is the loss's: a central difference along v
    h = 1e-2
    slope = (f.value(theta + h * v) - f.value(theta - h * v)) / (2 * h)
    assert slope == pytest.approx(f.gradient(theta) @ v, rel=1e-2)


def test_preconditioned_sharpness_is_lambda_max_of_p_inverse_h():
    import tensorflow as tf

    import custom_optimizers
    from experiments.curvature import (FlatLoss, extreme_eigenvalues, flat_weights,
                                       inverse_preconditioner)

    x, y = _data(20)
    model = _model("logreg", 20, 4)
    f = FlatLoss(model, x, y, "mse")
    adam = custom_optimizers.Adam(learning_rate=0.01, epsilon=1e-3)
    adam.build(model.trainable_variables)
    assert inverse_preconditioner(adam) is None  # no second moment before the first step
    for _ in range(3):
        theta = flat_weights(model)
        grads = [tf.constant(g) for g in f.unflatten(tf.constant(f.gradient(theta),
                                                                 tf.float32))]
        adam.apply_gradients(zip(grads, model.trainable_variables))
    inverse = inverse_preconditioner(adam)
    assert inverse.shape == (f.size,) and np.all(inverse > 0)
    rates = np.concatenate([np.ravel(r) for r in adam.effective_learning_rates()])
    assert np.allclose(inverse * 0.01, rates, rtol=1e-6)
    theta = flat_weights(model)
    exact = np.max(np.linalg.eigvals(np.diag(inverse) @ f.hessian(theta)).real)
    high = extreme_eigenvalues(f, theta, 40, scale=np.sqrt(inverse))[1]
    assert abs(high - exact) <= TOL * exact


def make_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("override,message", [
    ("trainer.loss=hinge", "trainer.loss='hinge' is not valid: choose one of cross_entropy, mse"),
    ("trainer.curvature_iterations=1", "trainer.curvature_iterations=1 is out of range"),
    ("trainer.curvature_every_n_steps=-1", "trainer.curvature_every_n_steps=-1 is out of"),
])
def test_bad_curvature_settings_are_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(make_cfg(override))


TINY = ["dataset=breast_cancer", "model=mlp", "model.depth=1", "model.width=4",
        "optimizer=adam", "optimizer.learning_rate=0.01", "trainer.epochs=2",
        "trainer.batch_size=64", "trainer.max_steps=10", "trainer.steps_per_execution=3",
        "tracking.log_model=false", "tracking.log_plots=false"]


def _history(uri, run_id, name):
    from mlflow.tracking import MlflowClient

    return [(m.step, m.value) for m in sorted(
        MlflowClient(tracking_uri=uri).get_metric_history(run_id, name), key=lambda m: m.step)]


def _fit(with_watch: bool):
    """Adam on a tiny MLP for 10 steps; (history, watch or None)."""
    import custom_optimizers
    from experiments.curvature import FlatLoss, TrainingWatch
    from experiments.data import load_dataset
    from experiments.train.trainer import Trainer, fit

    splits = load_dataset("breast_cancer", seed=0, val_fraction=0.1, test_fraction=0.2)
    model = _model("mlp", 30, 2, depth=1, width=4)
    optimizer = custom_optimizers.Adam(learning_rate=0.01)
    trainer = Trainer(model, optimizer, splits.x_train, splits.y_train)
    watch = None
    kwargs = {}
    if with_watch:
        watch = TrainingWatch(model, optimizer, FlatLoss(model, splits.x_train[:50],
                                                         splits.y_train[:50]),
                              curvature_every=4, weights_every=3, iterations=8)
        kwargs = {"probe": watch, "probe_every": watch.every}
    history = fit(trainer, splits, epochs=2, batch_size=64, seed=0, steps_per_execution=3,
                  max_steps=10, **kwargs)
    return history, watch


def test_measurements_do_not_change_training():
    off, _ = _fit(False)
    on, watch = _fit(True)
    assert on.losses == off.losses and on.final == off.final
    for key in ("epoch_loss", "epoch_accuracy", "val_loss", "val_accuracy"):
        assert on.epoch[key] == off.epoch[key]
    # step 0 (before the first update), every 4th step and after the last (10)
    assert [s for s, _ in watch.measurements] == [0, 4, 8, 10]
    assert watch.steps == [0, 3, 6, 9, 10]
    # Adam has a preconditioner only once it has stepped
    assert ["curvature/preconditioned_lambda_max" in m for _, m in watch.measurements] == [
        False, True, True, True]


@pytest.mark.slow
def test_measurements_and_weights_are_logged(tmp_path, shared_store):
    from mlflow.tracking import MlflowClient

    from experiments.train.pipeline import run

    uri = shared_store
    on = run(make_cfg(*TINY, f"tracking.uri={uri}", "trainer.curvature_every_n_steps=4",
                      "trainer.curvature_samples=50", "trainer.curvature_iterations=8",
                      "trainer.weights_every_n_steps=3"))
    assert len(_history(uri, on["run_id"], "loss")) == 10
    lam = _history(uri, on["run_id"], "curvature/lambda_max")
    assert [s for s, _ in lam] == [0, 4, 8, 10] and all(v > 0 for _, v in lam)
    assert [s for s, _ in lam] == [s for s, _ in _history(uri, on["run_id"],
                                                           "curvature/lambda_min")]
    assert [s for s, _ in _history(uri, on["run_id"],
                                   "curvature/preconditioned_lambda_max")] == [4, 8, 10]
    assert all(v > 0 for _, v in _history(uri, on["run_id"], "curvature/seconds"))
    assert [(s, m["curvature/lambda_max"]) for s, m in on["curvature"]] == lam
    # the weights along the way, read back from the run: steps 0, 3, 6, 9 and the last
    folder = MlflowClient(tracking_uri=uri).download_artifacts(on["run_id"], "weights",
                                                               str(tmp_path))
    saved = np.load(f"{folder}/trajectory.npz")
    assert list(saved["steps"]) == [0, 3, 6, 9, 10]
    assert saved["theta"].shape == (5, int(saved["sizes"].sum()))
    steps, weights = on["weights"]
    assert np.array_equal(np.stack(weights), saved["theta"])
    assert not np.allclose(saved["theta"][0], saved["theta"][-1])


def test_full_batch_mse_is_gradient_descent_on_the_whole_split():
    from experiments.curvature import FlatLoss
    from experiments.data import load_dataset
    from experiments.models import build_model
    from experiments.train.pipeline import run

    lr = 0.05
    cfg = make_cfg("dataset=breast_cancer", "model=logreg", "optimizer=sgd",
                   f"optimizer.learning_rate={lr}", "trainer.loss=mse", "trainer.full_batch=true",
                   "trainer.epochs=3", "trainer.weights_every_n_steps=1",
                   "tracking.enabled=false")
    validate(cfg)
    result = run(cfg)
    assert result["steps"] == 3  # one step per epoch
    steps, weights = result["weights"]
    assert steps == [0, 1, 2, 3]
    splits = load_dataset("breast_cancer", seed=0, val_fraction=0.1, test_fraction=0.2)
    f = FlatLoss(build_model("logreg", splits.input_shape, 2), splits.x_train,
                 splits.y_train, "mse")
    for before, after in zip(weights, weights[1:]):
        expected = before - lr * f.gradient(before.astype(np.float64))
        assert np.allclose(after, expected, rtol=1e-4, atol=1e-6)


def test_a_large_split_is_sampled_by_default():
    """``curvature_samples=0`` on MNIST or CIFAR-10 evaluated every training example in
    one pass (gigabytes): it takes a seeded sample of ``DEFAULT_SAMPLES`` now."""
    from experiments.curvature.watch import DEFAULT_SAMPLES, subset

    assert DEFAULT_SAMPLES == 10_000
    rows = subset(54_000, 0, seed=3)
    assert len(rows) == DEFAULT_SAMPLES == len(set(rows)) and list(rows) == sorted(rows)
    assert np.array_equal(rows, subset(54_000, 0, seed=3))
    assert np.array_equal(subset(4_500, 0, seed=3), np.arange(4_500))  # small: all of it
    assert np.array_equal(subset(54_000, 54_000, seed=3), np.arange(54_000))  # asked: all


def test_weight_snapshots_are_kept_on_disk_not_in_memory():
    import os

    from experiments.curvature.watch import Snapshots, TrainingWatch

    assert TrainingWatch.__dataclass_fields__["weights"].default_factory is Snapshots
    kept = Snapshots()
    assert not kept and kept.array().shape == (0, 0)
    rows = np.random.default_rng(0).normal(size=(3, 1000))
    for row in rows:
        kept.append(row)
    np.testing.assert_array_equal(kept.array(), rows.astype(np.float32))
    assert len(kept) == 3 and os.fstat(kept._file.fileno()).st_size == 3 * 1000 * 4
    np.testing.assert_array_equal(np.stack(kept), rows.astype(np.float32))
    np.testing.assert_array_equal(kept[1:][0], rows[1].astype(np.float32))
    with pytest.raises(ValueError, match="a snapshot of 5 weights"):
        kept.append(np.zeros(5))
