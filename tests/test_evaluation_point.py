"""The trainer evaluates where the rule says: Schedule-Free at its average x (validation,
test and the saved model), every other rule at its weights; the run records which, and a
Muon run which variable took which path."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from hydra import compose, initialize_config_dir

import custom_optimizers as co
from experiments.train.config import register_schemas as register_train_schemas
from experiments.train.config import validate
from experiments.train.trainer import Trainer, at_evaluation_point

register_train_schemas()

CONF = Path(__file__).resolve().parents[1] / "conf"
TINY = ["dataset=digits", "model=mlp", "trainer.epochs=1", "trainer.max_steps=12",
        "trainer.batch_size=32", "tracking.log_plots=false"]


def _train(store, *overrides):
    from experiments.train.pipeline import run

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, f"tracking.uri={store}", *overrides])
    validate(cfg)
    return run(cfg)


def test_at_evaluation_point_swaps_in_x_and_restores_y():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = co.ScheduleFreeAdamW(learning_rate=0.1)
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    trainer = Trainer(model, optimizer, x, np.arange(8) % 2)
    for _ in range(3):
        grads = [tf.ones_like(v) for v in model.trainable_variables]
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    y = [v.numpy().copy() for v in model.trainable_variables]
    with at_evaluation_point(model, optimizer):
        inside = [v.numpy().copy() for v in model.trainable_variables]
        loss_at_x = trainer._eval(tf.constant(x), tf.constant(np.arange(8) % 2))
    for a, b in zip(inside, optimizer.x):
        np.testing.assert_array_equal(a, b.numpy())
    assert any(np.any(a != b) for a, b in zip(inside, y))
    for v, b in zip(model.trainable_variables, y):
        np.testing.assert_array_equal(v.numpy(), b)
    # Trainer.evaluate is that evaluation.
    np.testing.assert_allclose(trainer.evaluate(x, np.arange(8) % 2)[0],
                               loss_at_x.numpy()[0] / 8, rtol=1e-6)


def test_schedule_free_run_is_evaluated_tested_and_saved_at_x(shared_store):
    from mlflow.tracking import MlflowClient

    result = _train(shared_store, "optimizer=schedule_free_adamw", "tracking.log_model=true")
    client = MlflowClient(tracking_uri=shared_store)
    run = client.get_run(result["run_id"])
    assert run.data.tags["evaluation_point"] == "x"
    model = keras.models.load_model(client.download_artifacts(run.info.run_id,
                                                              "model/model.keras"))
    saved = model.optimizer
    # The saved weights are x (the slot), not y = β1 x + (1-β1) z.
    for v in model.trainable_variables:
        x = saved.x[saved._get_variable_index(v)]
        np.testing.assert_array_equal(v.numpy(), x.numpy())
    from experiments.data import load_dataset

    splits = load_dataset("digits")
    logits = model.predict(splits.x_test, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, -1) == splits.y_test))
    assert abs(accuracy - run.data.metrics["test_accuracy"]) < 1e-9


def test_other_runs_are_evaluated_at_their_weights_and_muon_logs_its_paths(shared_store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=shared_store)
    adam = client.get_run(_train(shared_store, "optimizer=adam")["run_id"])
    assert adam.data.tags["evaluation_point"] == "weights"
    assert "muon_variables" not in adam.data.tags
    for option in ("muon", "keras_muon"):
        run = client.get_run(_train(shared_store, f"optimizer={option}")["run_id"])
        assert run.data.tags["evaluation_point"] == "weights"
        paths = json.loads(Path(client.download_artifacts(
            run.info.run_id, "optimizer/paths.json")).read_text())
        # mlp: two hidden Dense kernels take Muon; their biases and the logits layer AdamW.
        assert all("logits" not in p and p.endswith("kernel") for p in paths["muon"]), paths
        assert {"logits/kernel", "logits/bias"} <= set(paths["adamw"])
        assert run.data.tags["muon_variables"] == str(len(paths["muon"])) != "0"
