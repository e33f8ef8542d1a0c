"""``experiments.train``: configs compose, jobs train and are read back from MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.train.config import register_schemas as register_train_schemas
from experiments.core import console, registry
from experiments.core.checks import ConfigError
from experiments.train.config import validate

register_train_schemas()

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
GROUPS = ("optimizer", "dataset", "model", "trainer", "tracking")
TINY = ["trainer.epochs=2", "trainer.max_steps=6", "trainer.batch_size=16",
        "tracking.log_model=false", "tracking.log_plots=false"]


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def make_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"


def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.slow
def test_every_option_composes_and_validates(group):
    found = options(group)
    assert found, group
    for option in found:
        cfg = make_cfg(f"{group}={option}")
        validate(cfg)


@pytest.mark.parametrize("option", options("optimizer"))
def test_every_optimizer_config_instantiates(option):
    from experiments.core.optim import build_optimizer

    cfg = make_cfg(f"optimizer={option}")
    opt = build_optimizer(OmegaConf.to_container(cfg.optimizer, resolve=True))
    module = type(opt).__module__
    if option.startswith("keras_"):
        assert module.startswith("keras"), module
    else:
        assert module.startswith("custom_optimizers"), module


def test_pairs_share_hyperparameters():
    """A Keras option has its rule's hyperparameters, but for those its built-in fixes."""
    for rule in registry.rules():
        if rule.keras is None:
            continue
        ours = OmegaConf.to_container(make_cfg(f"optimizer={rule.name}").optimizer)
        theirs = OmegaConf.to_container(
            make_cfg(f"optimizer={registry.option_name(rule.name, 'keras')}").optimizer)
        assert ours.pop("implementation") == "custom"
        assert theirs.pop("implementation") == "keras"
        assert {**ours, **rule.keras.fixed} == theirs, rule.name


def test_default_config_is_digits_mlp_adam():
    cfg = make_cfg()
    assert (cfg.dataset.name, cfg.model.name, cfg.optimizer.name,
            cfg.optimizer.implementation) == ("digits", "mlp", "adam", "custom")


@pytest.mark.parametrize("overrides, fragment", [
    (["optimizer.learning_rate=-1"], "optimizer.learning_rate=-1.0 is out of range"),
    (["optimizer=momentum", "optimizer.momentum=1.5"], "optimizer.momentum=1.5"),
    (["optimizer.beta_2=1"], "optimizer.beta_2=1.0 is out of range"),
    (["optimizer.epsilon=-1e-3"], "optimizer.epsilon"),
    (["optimizer.clip_mode=tanh"], "choose one of norm, sign"),
    (["optimizer.clip_threshold=0"], "optimizer.clip_threshold=0.0"),
    (["optimizer=keras_adam", "optimizer.bias_correction=false"], "no Keras counterpart"),
    (["optimizer=keras_sgd", "optimizer.clip_threshold=1", "optimizer.clip_mode=sign"],
     "no Keras counterpart"),
    (["optimizer.implementation=torch"], "choose one of custom, keras"),
    (["trainer.epochs=0"], "trainer.epochs=0"),
    (["trainer.batch_size=0"], "trainer.batch_size=0"),
])
def test_out_of_range_values_are_refused(overrides, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        validate(make_cfg(*overrides))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_learning_rate_given_as_int_is_accepted():
    cfg = make_cfg("optimizer=sgd", "optimizer.learning_rate=1")
    validate(cfg)
    from experiments.core.optim import build_optimizer

    opt = build_optimizer(OmegaConf.to_container(cfg.optimizer))
    assert float(opt.learning_rate.numpy()) == 1.0


def _train(store, *overrides):
    from experiments.train.pipeline import run

    cfg = make_cfg(*TINY, f"tracking.uri={store}", *overrides)
    validate(cfg)
    return cfg, run(cfg)


def _history_lengths(uri, run_id, names):
    c = client(uri)
    return {n: len(c.get_metric_history(run_id, n)) for n in names}


@pytest.mark.slow
def test_tracked_run_is_complete(store):
    cfg, result = _train(store, "trainer.max_steps=5", "trainer.epochs=3",
                         "tracking.log_model=true", "tracking.log_plots=true",
                         "trainer.steps_per_execution=2")
    c = client(store)
    run = c.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["optimizer"], tags["implementation"], tags["dataset"], tags["model"],
            tags["seed"]) == ("adam", "custom", "digits", "mlp", "0")
    params = run.data.params
    assert params["optimizer.learning_rate"] == "0.001"
    assert params["trainer.batch_size"] == "16"
    assert run.data.metrics["hp/optimizer.learning_rate"] == pytest.approx(0.001)
    step_names = ["loss", "grad_norm", "learning_rate", "effective_lr/mean",
                  "effective_lr/min", "effective_lr/max"]
    layer_names = [k for k in run.data.metrics if k.startswith("grad_norm/")]
    assert len(layer_names) >= 2, layer_names
    counts = _history_lengths(store, run.info.run_id, step_names + layer_names)
    assert set(counts.values()) == {5}, counts
    steps = [m.step for m in c.get_metric_history(run.info.run_id, "loss")]
    assert steps == [1, 2, 3, 4, 5]
    # 5 steps with batch 16: all inside the first epoch, so one epoch ran.
    epoch_names = ["epoch_loss", "epoch_accuracy", "val_loss", "val_accuracy", "epoch_time_s"]
    assert set(_history_lengths(store, run.info.run_id, epoch_names).values()) == {1}
    assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0
    assert run.data.metrics["test_loss"] > 0
    artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"config", "plots", "model"} <= artifacts
    inner = {a.path for a in c.list_artifacts(run.info.run_id, "plots")}
    assert "plots/loss_curve.png" in inner
    local = c.download_artifacts(run.info.run_id, "plots/loss_curve.png")
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model_file = c.download_artifacts(run.info.run_id, "model/model.keras")
    import keras

    import custom_optimizers  # noqa: F401
    model = keras.models.load_model(model_file)
    assert model.optimizer.__class__.__name__ == "Adam"


def test_log_every_n_steps_thins_step_metrics(store, capsys):
    _, result = _train(store, "trainer.max_steps=9", "tracking.log_every_n_steps=3")
    steps = [m.step for m in client(store).get_metric_history(result["run_id"], "loss")]
    assert steps == [3, 6, 9]
    # Progress on stderr: 9 steps of the 79 of an epoch, so 1 epoch in all, with its losses.
    val_loss = client(store).get_run(result["run_id"]).data.metrics["val_loss"]
    progress = capsys.readouterr().err.splitlines()
    assert any(line.startswith("adam-digits-mlp-s0 1/1 epoch epoch_loss=")
               and f"val_loss={val_loss:.4g} " in line for line in progress), progress


def test_bulk_stored_metrics_equal_log_batch(store):
    """RunLogger stores older rows in bulk: the store then holds exactly what MLflow's
    log_batch stores (values, steps, timestamps, infinities, NaN, latest values), and rows
    logged a second time (a resumed run) are skipped, not an error."""
    from mlflow.entities import Metric

    from experiments.core.tracking import RunLogger

    special = {2: float("inf"), 3: float("-inf"), 5: float("nan")}
    rows = [({"loss": 1.0 / s, "grad_norm": special.get(s, s * 0.5)}, s) for s in range(1, 8)]
    logger = RunLogger.start(store, "bulk", "bulk", tags={})
    logger.flush_at = 5  # several flushes while the writer may still be busy
    for metrics, step in rows:
        logger.log_metrics(metrics, step, timestamp_ms=1000 + step)
    logger.wait()
    for metrics, step in rows[2:4]:  # already stored: refused in bulk, skipped by log_batch
        logger.log_metrics(metrics, step, timestamp_ms=1000 + step)
    logger.end()
    plain = RunLogger.start(store, "bulk", "plain", tags={})
    plain.client.log_batch(plain.run_id, metrics=[
        Metric(k, v, 1000 + step, step) for metrics, step in rows for k, v in metrics.items()])
    plain.end()
    c = client(store)
    for key in ("loss", "grad_norm"):
        ours, theirs = (sorted((m.step, m.timestamp, repr(m.value)) for m in
                               c.get_metric_history(run_id, key))
                        for run_id in (logger.run_id, plain.run_id))
        assert ours == theirs and len(ours) == 7
    assert c.get_run(logger.run_id).data.metrics == c.get_run(plain.run_id).data.metrics
    assert c.get_run(logger.run_id).data.metrics["loss"] == pytest.approx(1 / 7)


def test_sgd_has_no_effective_learning_rate(store):
    _, result = _train(store, "optimizer=sgd", "trainer.max_steps=3")
    metrics = client(store).get_run(result["run_id"]).data.metrics
    assert "grad_norm" in metrics and "effective_lr/mean" not in metrics


@pytest.mark.parametrize("dataset, model", [
    ("digits", "logreg"), ("digits", "cnn"), ("digits", "rnn"),
    ("breast_cancer", "mlp"), ("mnist5k", "cnn"), ("mnist1d", "cnn"), ("mnist1d", "rnn"),
])
@pytest.mark.slow
def test_tiny_training_per_dataset_and_model(store, dataset, model):
    _, result = _train(store, f"dataset={dataset}", f"model={model}", "trainer.max_steps=3")
    run = client(store).get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["dataset"] == dataset and run.data.tags["model"] == model
    assert len(client(store).get_metric_history(run.info.run_id, "loss")) == 3


def test_custom_and_keras_pair_agree_on_real_data():
    """Momentum vs keras SGD(lr*(1-a), a): the same rule, so nearly the same losses."""
    from experiments.train.pipeline import run

    losses = {}
    for option in ("momentum", "keras_momentum"):
        cfg = make_cfg(*TINY, "tracking.enabled=false", f"optimizer={option}",
                       "trainer.max_steps=20", "trainer.epochs=1")
        losses[option] = run(cfg)["val_loss"]
    assert losses["momentum"] == pytest.approx(losses["keras_momentum"], rel=1e-4)


def _cli(*args, env_extra=None, timeout=300, tf_log_level="3"):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=tf_log_level, **(env_extra or {}))
    if tf_log_level is None:
        del env["TF_CPP_MIN_LOG_LEVEL"]
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_two_job_multirun_is_grouped(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = _cli("-m", "optimizer=adam,keras_adam", *TINY, f"tracking.uri={uri}",
                  f"hydra.sweep.dir={tmp_path / 'sweep'}", tf_log_level=None)
    assert result.returncode == 0, result.stderr[-2000:]
    # a quiet console (experiments/core/console.py): none of TensorFlow's start-up notices,
    # MLflow's table creation or retracing warnings; each job's progress is there
    noise = [line for line in result.stderr.splitlines() if console.NOISE.search(line)
             or "database tables" in line or "retracing" in line]
    assert not noise, noise
    assert result.stderr.count(" 1/1 epoch epoch_loss=") == 2, result.stderr
    c = client(uri)
    exp = c.get_experiment_by_name("optimizer-lab")
    runs = c.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["optimizer"] for r in runs) == ["adam", "keras_adam"]
    assert len({r.data.tags["sweep"] for r in runs}) == 1
    assert all(r.info.status == "FINISHED" for r in runs)


def test_evaluation_is_traced_once_per_trainer():
    """Splits and last batches of other lengths reuse one trace (a sweep's jobs paid two)."""
    import custom_optimizers
    from experiments.data import load_dataset
    from experiments.models import build_model
    from experiments.train.trainer import Trainer

    splits = load_dataset("digits")
    model = build_model("logreg", splits.input_shape, splits.num_classes)
    trainer = Trainer(model, custom_optimizers.SGD(0.1), splits.x_train, splits.y_train)
    for x, y in ((splits.x_val, splits.y_val), (splits.x_test, splits.y_test),
                 (splits.x_train[:5], splits.y_train[:5])):
        loss, accuracy = trainer.evaluate(x, y)
        assert loss > 0 and 0 <= accuracy <= 1
    assert trainer._eval.experimental_get_tracing_count() == 1
