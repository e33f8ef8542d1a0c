"""Learning-rate schedules: their values, the rules under a schedule against the NumPy
reference, the Keras twins, the logged curve, and a resume in the middle of a warmup."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments.train.config import register_schemas as register_train_schemas
from custom_optimizers import reference
from experiments.train import pipeline
from experiments.train.config import validate
from experiments.core.optim import build_optimizer
from experiments.core.schedules import build_schedule

register_train_schemas()

ROOT = Path(__file__).resolve().parents[1]


def make_cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def factor(s, t):
    """f(t) written out from the definitions in experiments/core/schedules.py."""
    name = s["name"]
    if name == "step":
        return s["factors"][sum(t > b for b in s["boundaries"])]
    if name == "exponential":
        return s["decay_rate"] ** (t / s["decay_steps"])
    w = s["warmup_steps"]
    if t < w:
        return t / w
    if name == "warmup":
        return 1.0
    done = min(t - w, s["decay_steps"]) / s["decay_steps"]
    return s["alpha"] + (1 - s["alpha"]) * 0.5 * (1 + math.cos(math.pi * done))


SCHEDULES = [
    {"name": "step", "boundaries": [3, 7], "factors": [1.0, 0.5, 0.1]},
    {"name": "exponential", "decay_steps": 4, "decay_rate": 0.5, "staircase": False},
    {"name": "cosine", "warmup_steps": 5, "decay_steps": 10, "alpha": 0.1},
    {"name": "cosine", "warmup_steps": 0, "decay_steps": 10, "alpha": 0.0},
    {"name": "warmup", "warmup_steps": 4},
]


@pytest.mark.parametrize("s", SCHEDULES, ids=lambda s: f"{s['name']}{s.get('warmup_steps', '')}")
def test_schedule_is_eta_times_its_factor(s):
    schedule = build_schedule(s, 0.3)
    got = [float(schedule(t)) for t in range(20)]
    want = [0.3 * factor(s, t) for t in range(20)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert build_schedule({"name": "constant"}, 0.3) == 0.3 == build_schedule(None, 0.3)


@pytest.mark.parametrize("rule, hp", [
    ("momentum", {"momentum": 0.8}),
    ("adam", {"beta_1": 0.9, "beta_2": 0.99, "epsilon": 1e-7}),  # the twin: δ -> 0
])
def test_rule_under_a_schedule_matches_the_reference(rule, hp):
    """The lecture's rule with η_t = η f(t) at every step, against NumPy with the same η_t;
    and what the Keras twin does with the same (translated) schedule."""
    import tensorflow as tf

    s = SCHEDULES[2]  # warmup, then a cosine
    c = np.array([1.0, 10.0], np.float32)  # f(w) = sum(c w^2) / 2
    start = np.array([1.0, -1.0], np.float32)
    paths = {}
    for implementation in ("custom", "keras"):
        opt = build_optimizer({"name": rule, "implementation": implementation,
                               "learning_rate": 0.05, **hp}, s)
        w = tf.Variable(start)
        path = []
        for _ in range(15):
            opt.apply_gradients([(tf.constant(c) * w, w)])
            path.append(w.numpy().copy())
        paths[implementation] = np.array(path)
    ref = reference.BY_NAME[rule](learning_rate=0.05, **hp)
    w, want = [start.astype(np.float64)], []
    for t in range(15):
        ref.lr = 0.05 * factor(s, t)
        w = ref.step(w, [c * w[0]])
        want.append(w[0])
    np.testing.assert_allclose(paths["custom"], want, rtol=1e-5, atol=1e-6)
    if rule == "adam":  # the learning rate multiplies the whole step in both
        np.testing.assert_allclose(paths["keras"], want, rtol=1e-3, atol=1e-5)
    else:  # Keras puts η_t inside the velocity (v = αv - η_t g): equal only while η is
        # constant, i.e. never here; the gap is the lecture's form against Keras's
        assert not np.allclose(paths["keras"], want, rtol=1e-3)
        assert np.allclose(paths["keras"][-1], want[-1], atol=0.1)


@pytest.mark.slow
def test_resume_in_the_middle_of_a_warmup_continues_the_schedule(tmp_path, monkeypatch):
    """Interrupted (a real SIGINT) at step 6 of a 12-step warmup and resumed: the logged
    learning rate and loss equal an uninterrupted run's at every step."""
    from mlflow.tracking import MlflowClient

    args = ["optimizer.learning_rate=0.01", "schedule=warmup", "schedule.warmup_steps=12",
            "trainer.epochs=1", "trainer.max_steps=20", "trainer.batch_size=32",
            "trainer.steps_per_execution=1", "trainer.progress=false",
            "tracking.log_model=false", "tracking.log_plots=false"]

    def history(uri, run_id, key):
        return {m.step: m.value for m in MlflowClient(uri).get_metric_history(run_id, key)}

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # a FINISHED run is never resumed
    cfg = make_cfg(*args, f"tracking.uri={uri}")
    validate(cfg)
    straight = pipeline.run(cfg)["run_id"]

    on_step = pipeline.TrackedHooks.on_step

    def interrupt_at_6(self, step, metrics):
        on_step(self, step, metrics)
        if step == 6:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(pipeline.TrackedHooks, "on_step", interrupt_at_6)
    with pytest.raises(pipeline.Stopped) as stopped:
        pipeline.run(make_cfg(*args, f"tracking.uri={uri}"))
    assert stopped.value.step == 6
    monkeypatch.setattr(pipeline.TrackedHooks, "on_step", on_step)
    resumed = pipeline.run(make_cfg(*args, f"tracking.uri={uri}", "trainer.resume=true"))
    assert resumed["run_id"] == stopped.value.run_id

    lr = history(uri, resumed["run_id"], "learning_rate")
    assert sorted(lr) == list(range(1, 21))
    # After step k the rate is 0.01 * min(k / 12, 1): the rate of step k + 1.
    assert lr == pytest.approx({k: 0.01 * min(k / 12, 1.0) for k in lr}, rel=1e-5)
    assert lr == pytest.approx(history(uri, straight, "learning_rate"), rel=1e-6)
    assert history(uri, resumed["run_id"], "loss") == pytest.approx(
        history(uri, straight, "loss"), rel=1e-5)


@pytest.mark.slow
def test_an_optuna_study_may_search_the_schedule():
    """``schedule.warmup_steps=int(interval(1,300))`` on the command line joins a preset's
    search space (the Optuna sweeper's own parser); both ends are checked up front."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    from experiments.core.cli import check_command_line

    space = "schedule.warmup_steps=int(interval(1,300))"
    dist = create_optuna_distribution_from_override(
        OverridesParser.create().parse_override(space))
    assert (type(dist).__name__, dist.low, dist.high) == ("IntUniformDistribution", 1, 300)
    argv = ["-m", "hparams_search=adam_optuna", "schedule=warmup"]
    check_command_line("train", validate, [*argv, space])  # accepted: returns
    with pytest.raises(SystemExit) as refused:
        check_command_line("train", validate, [*argv, space.replace("(1,", "(0,")])
    assert refused.value.code == 2
