"""The lecture's challenges as ``conf/experiment`` presets: every preset and every command
its comment documents composes, and a tiny version of each trains and is tracked."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from experiments.landscape.config import register_schemas as register_landscape_schemas
from experiments.train.config import register_schemas as register_train_schemas
from experiments import landscape as landscapes
from experiments.train.config import validate

register_landscape_schemas()
register_train_schemas()

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
TINY = ["trainer.epochs=1", "trainer.max_steps=3", "trainer.batch_size=16",
        "tracking.log_model=false", "tracking.log_plots=false"]


def make_cfg(config, *overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config, overrides=list(overrides))


def documented_commands(preset):
    """(module, overrides) of every ``python -m experiments.<module> ...`` in the comment."""
    text = (CONF / "experiment" / f"{preset}.yaml").read_text()
    comment = "\n".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    comment = comment.replace("\\\n", " ")
    return [(m.group(1), m.group(2).split())
            for m in re.finditer(r"python -m experiments\.(\w+) ([^\n(#]*)", comment)]


def expand(overrides):
    """A ``-m`` command line as the list of its jobs' overrides (comma sweeps expanded)."""
    parsed = OverridesParser.create().parse_overrides([o for o in overrides if o != "-m"])
    choices = []
    for override in parsed:
        key = override.get_key_element()
        values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                  else [override.get_value_element_as_str()])
        choices.append([f"{key}={v}" for v in values])
    return [list(job) for job in itertools.product(*choices)]


def test_the_lecture_challenges_have_presets():
    assert PRESETS == sorted(["vanishing_gradients", "exploding_gradients", "no_critical_point",
                              "poor_conditioning", "saddle_point", "momentum_vs_sgd",
                              "adaptive_lr", "adam_bias_correction", "edge_of_stability",
                              "saddle_real", "conditioning_real", "adam_warmup", "spectrum_real"])
    for preset in PRESETS:
        text = (CONF / "experiment" / f"{preset}.yaml").read_text()
        assert text.startswith("# @package _global_"), preset


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.slow
def test_every_documented_command_composes_and_validates(preset):
    commands = documented_commands(preset)
    assert any(module == "train" and "-m" in args for module, args in commands), preset
    jobs = 0
    for module, args in commands:
        for job in expand(args):
            if module == "train":
                cfg = make_cfg("train", *job)
                validate(cfg)
                assert cfg.tracking.tags.challenge == preset
            else:
                landscapes.validate(make_cfg("landscape", *job))
            jobs += 1
    assert jobs >= 2


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"


def _train(store, preset, *overrides):
    """A tiny run of ``preset``; (run, {metric: [values by step]})."""
    from mlflow.tracking import MlflowClient

    from experiments.train.pipeline import run

    cfg = make_cfg("train", f"+experiment={preset}", *TINY, f"tracking.uri={store}", *overrides)
    validate(cfg)
    result = run(cfg)
    client = MlflowClient(tracking_uri=store)
    finished = client.get_run(result["run_id"])
    history = {name: [m.value for m in sorted(client.get_metric_history(finished.info.run_id,
                                                                          name),
                                              key=lambda m: m.step)]
               for name in finished.data.metrics}
    return finished, history


@pytest.mark.parametrize("preset", [p for p in PRESETS
                                    if p not in ("vanishing_gradients", "exploding_gradients",
                                                 "no_critical_point", "edge_of_stability")])
@pytest.mark.slow
def test_tiny_run(store, preset):
    run, history = _train(store, preset)
    assert run.info.status == "FINISHED"
    assert run.data.tags["challenge"] == preset
    assert len(history["loss"]) == 3 and all(math.isfinite(v) for v in history["loss"])
    assert len(history["weight_norm"]) == 3


@pytest.mark.slow
def test_vanishing_gradients_first_layer_gets_almost_nothing(store):
    sigmoid, h = _train(store, "vanishing_gradients")
    ratio = h["grad_norm/dense_1"][0] / h["grad_norm/dense_10"][0]
    assert ratio < 1e-3, ratio
    relu, h = _train(store, "vanishing_gradients", "model.activation=relu",
                     "model.initializer=he_normal")
    ratio = h["grad_norm/dense_1"][0] / h["grad_norm/dense_10"][0]
    assert 0.1 < ratio < 10, ratio


@pytest.mark.slow
def test_exploding_gradients_diverge_without_clipping_only(store):
    from mlflow.tracking import MlflowClient

    from experiments.train.trainer import Diverged

    with pytest.raises(Diverged):
        _train(store, "exploding_gradients", "trainer.max_steps=8")
    client = MlflowClient(tracking_uri=store)
    failed = client.search_runs(
        [client.get_experiment_by_name("challenges").experiment_id],
        filter_string="tags.challenge = 'exploding_gradients'", max_results=1)[0]
    assert failed.info.status == "FAILED" and failed.data.tags["failure_reason"] == "diverged"
    for clip in (["optimizer.clip_threshold=1"],
                 ["optimizer.clip_threshold=0.01", "optimizer.clip_mode=sign"]):
        run, h = _train(store, "exploding_gradients", "trainer.max_steps=8", *clip)
        assert run.info.status == "FINISHED"
        assert all(math.isfinite(v) for v in h["loss"]) and h["loss"][-1] < h["loss"][0]


def test_no_critical_point_weights_grow_while_the_loss_falls(store):
    run, h = _train(store, "no_critical_point", "trainer.max_steps=12")
    assert run.data.params["dataset.name"] == "breast_cancer"
    weight = h["weight_norm"]
    assert weight[-1] > 1.3 * weight[0]
    assert sum(h["loss"][-3:]) < sum(h["loss"][:3])


def test_edge_of_stability_is_full_batch_gradient_descent_with_sharpness_logged(store):
    run, h = _train(store, "edge_of_stability", "trainer.epochs=4", "trainer.max_steps=4",
                    "trainer.curvature_every_n_steps=2", "tracking.log_every_n_steps=1")
    assert run.data.params["trainer.loss"] == "mse"
    assert len(h["loss"]) == 4  # one step per epoch: the whole training split each time
    assert len(h["curvature/lambda_max"]) == 3  # steps 0, 2, 4
    assert all(v > 0 for v in h["curvature/lambda_max"])
