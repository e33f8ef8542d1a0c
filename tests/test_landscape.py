"""``experiments.landscape``: the 2D test functions, the baselines, every optimizer through its
real class, the MLflow runs and the pictures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments.landscape.config import register_schemas as register_landscape_schemas
from experiments import landscape as L
from experiments.core import registry
from experiments.core.checks import ConfigError

register_landscape_schemas()

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
NAMES = sorted(p.stem for p in (CONF / "landscape").glob("*.yaml"))
WITH_MINIMUM = [n for n in NAMES if L.LANDSCAPES[n].minimum is not None]
PNG = b"\x89PNG\r\n\x1a\n"


def make_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("landscape", overrides=list(overrides))


def validated(*overrides):
    cfg = make_cfg(*overrides)
    return cfg, L.validate(cfg)


@pytest.mark.slow
def test_every_landscape_has_a_config_and_composes():
    assert NAMES == sorted(L.LANDSCAPES)
    for name in NAMES:
        cfg, optimizers = validated(f"landscape={name}")
        assert cfg.landscape.name == name
        assert list(optimizers) == list(registry.optimizer_names())
        for option, conf in optimizers.items():  # a pair shares the landscape's rate
            rate = cfg.landscape.learning_rates.get(
                conf["name"], registry.lab(conf["name"]).landscape_learning_rate)
            assert conf["learning_rate"] == rate, option
            assert conf["implementation"] == ("keras" if option.startswith("keras_") else "custom")


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_finite_differences(name):
    """TensorFlow's gradient of each function (what the optimizers get) against central
    differences of the NumPy evaluation, in float64, at the start and random points."""
    import tensorflow as tf

    cfg = make_cfg(f"landscape={name}").landscape
    _, f = L.objective(cfg)
    b = list(cfg.bounds)
    rng = np.random.default_rng(0)
    points = np.vstack([list(cfg.start),
                        rng.uniform([b[0], b[2]], [b[1], b[3]], size=(8, 2))])
    var = tf.Variable(points, dtype=tf.float64)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(f(var[:, 0], var[:, 1], tf.math))
    autodiff = tape.gradient(total, var).numpy()
    h = 1e-6
    for p, g in zip(points, autodiff):
        fd = [(f(p[0] + h, p[1], np) - f(p[0] - h, p[1], np)) / (2 * h),
              (f(p[0], p[1] + h, np) - f(p[0], p[1] - h, np)) / (2 * h)]
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * (1 + np.abs(g).max()),
                                   err_msg=f"{name} at {p}")


@pytest.mark.parametrize("name", WITH_MINIMUM)
def test_grid_search_finds_the_known_minimum(name):
    cfg = make_cfg(f"landscape={name}").landscape
    spec, f = L.objective(cfg)
    b, points = list(cfg.bounds), 801
    best = L.grid_search(f, b, points)
    assert best.evaluations == points * points
    spacing = max(b[1] - b[0], b[3] - b[2]) / (points - 1)
    assert np.linalg.norm(best.points[0] - spec.minimum) <= 2 * spacing, best.points[0]
    assert best.losses[0] <= f(*spec.minimum, np) + 1e-3


def test_greedy_search_keeps_the_best_and_counts_evaluations():
    cfg = make_cfg("landscape=rosenbrock").landscape
    spec, f = L.objective(cfg)
    first = L.greedy_search(f, list(cfg.start), 0.05, 500, seed=3)
    again = L.greedy_search(f, list(cfg.start), 0.05, 500, seed=3)
    assert first.evaluations == len(first.losses) == 500
    assert np.all(np.diff(first.losses) <= 0)
    assert first.losses[-1] < first.losses[0]
    np.testing.assert_array_equal(first.points, again.points)


def _saddle_run(start):
    cfg, optimizers = validated("landscape=saddle", "optimizers=[sgd,momentum,adam]",
                                f"landscape.start=[{start[0]},{start[1]}]")
    from experiments.core.optim import build_optimizer

    spec, f = L.objective(cfg.landscape)
    runs = L.optimize(f, start, {k: build_optimizer(v) for k, v in optimizers.items()},
                      cfg.landscape.steps)
    return {t.label: (t, L.summarize(t, spec, f, cfg.landscape)) for t in runs}


@pytest.mark.slow
def test_on_the_ridge_gradient_descent_stays_and_an_offset_escapes():
    on_ridge = _saddle_run([1.5, 0.0])
    for label, (traj, summary) in on_ridge.items():
        assert np.all(traj.points[:, 1] == 0.0), label  # no gradient across the ridge
        assert not summary["escaped"], label
    sgd = on_ridge["sgd"][0]
    assert abs(sgd.points[-1, 0]) < 1e-6  # gradient descent converges to the saddle point
    offset = _saddle_run([1.5, 0.001])
    for label in ("momentum", "adam"):
        summary = offset[label][1]
        assert summary["escaped"] and summary["escape_step"] > 0, label
        assert summary["final_loss"] < -1.0, label
    # Adam's normalised steps leave the ridge faster than momentum's averaged gradient.
    assert offset["adam"][1]["escape_step"] < offset["momentum"][1]["escape_step"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One small tracked run on the saddle: three optimizers and both baselines."""
    tmp = tmp_path_factory.mktemp("landscape")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    cfg, optimizers = validated(
        "landscape=saddle", "optimizers=[sgd,momentum,keras_momentum]", "steps=100",
        "landscape.start=[1.5,0.01]",
        "grid_points=21", "gif_frames=5", f"output_dir={tmp / 'out'}", f"tracking.uri={uri}")
    result = L.run(cfg, optimizers=optimizers, overrides=["steps=100"])
    return uri, result, tmp


@pytest.mark.slow
def test_tracked_run_is_one_parent_with_a_nested_run_per_method(tracked):
    from mlflow.tracking import MlflowClient

    uri, result, _ = tracked
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(result["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["landscape"] == "saddle"
    assert parent.data.params["optimizers"] == "sgd,momentum,keras_momentum"
    assert parent.data.metrics["escaped/momentum"] == 1.0
    experiment = client.get_experiment_by_name("landscapes")
    children = {r.info.run_name: r for r in client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    assert sorted(children) == ["greedy_search", "grid_search", "keras_momentum", "momentum",
                                "sgd"]
    sgd = children["sgd"]
    assert sgd.info.status == "FINISHED"
    assert sgd.data.params["learning_rate"] == "0.05"
    for name in ("loss", "x", "y", "grad_norm"):
        steps = [m.step for m in client.get_metric_history(sgd.info.run_id, name)]
        assert steps == list(range(101)), name
    assert {"final_loss", "escaped", "escape_step", "evaluations",
            "largest_step"} <= set(sgd.data.metrics)
    assert sgd.data.metrics["evaluations"] == 101
    assert children["grid_search"].data.metrics["evaluations"] == 21 * 21
    # The Keras built-in follows the lecture's momentum (translated hyperparameters).
    ours = [m.value for m in client.get_metric_history(children["momentum"].info.run_id, "y")]
    keras = [m.value for m in client.get_metric_history(children["keras_momentum"].info.run_id,
                                                        "y")]
    np.testing.assert_allclose(ours, keras, rtol=1e-4, atol=1e-7)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"plots", "config", "summary.md", "summary.json"} <= artifacts
    summary = Path(client.download_artifacts(parent.info.run_id, "summary.md")).read_text()
    assert "| sgd |" in summary and "escaped" in summary


def test_pictures_are_valid_png_and_animated_gif(tracked):
    from mlflow.tracking import MlflowClient
    from PIL import Image

    uri, result, tmp = tracked
    client = MlflowClient(tracking_uri=uri)
    plots = sorted(a.path for a in client.list_artifacts(result["run_id"], "plots"))
    assert plots == ["plots/saddle_loss.png", "plots/saddle_paths.gif",
                     "plots/saddle_paths.png"]
    for path in plots:
        local = Path(client.download_artifacts(result["run_id"], path, str(tmp / "dl")))
        data = local.read_bytes()
        with Image.open(local) as image:
            image.verify()
        with Image.open(local) as image:
            if path.endswith(".png"):
                assert data[:8] == PNG and image.format == "PNG"
                assert min(image.size) > 100
            else:
                assert data[:6] in (b"GIF87a", b"GIF89a") and image.format == "GIF"
                assert image.n_frames == 5
    assert (tmp / "out" / "saddle_paths.png").exists()  # also kept in output_dir


def test_summary_reports_distance_and_steps_to_tolerance():
    cfg, optimizers = validated("landscape=ill_conditioned", "optimizers=[sgd,nesterov]")
    from experiments.core.optim import build_optimizer

    spec, f = L.objective(cfg.landscape)
    runs = L.optimize(f, list(cfg.landscape.start),
                      {k: build_optimizer(v) for k, v in optimizers.items()}, 300)
    for t in runs:
        t.summary = L.summarize(t, spec, f, cfg.landscape)
    summaries = {t.label: t.summary for t in runs}
    for label, s in summaries.items():
        assert s["final_distance"] < cfg.landscape.tolerance, label
        assert s["reached_tolerance"] and s["evaluations"] == 301
    # The lecture's point: momentum crosses the narrow valley without GD's zig-zag.
    assert summaries["nesterov"]["steps_to_tolerance"] < summaries["sgd"]["steps_to_tolerance"]
    table = L.markdown_table("ill_conditioned", runs, spec)
    assert table.count("\n| ") == 3 and "steps to tolerance" in table


@pytest.mark.parametrize("overrides, fragment", [
    (["landscape.tolerance=0"], "landscape.tolerance=0.0 is out of range"),
    (["landscape.bounds=[1,0,0,1]"], "landscape.bounds"),
    (["optimizers=[]"], "optimizers is empty"),
    (["optimizers=[sgd,sgd]"], "names an option twice"),
    (["optimizers=[keras_sgd]", "optimizer_overrides.clip_threshold=1",
      "optimizer_overrides.clip_mode=sign"], "keras_sgd: optimizer.clip_mode=sign"),
    (["+landscape.learning_rates.adamax=0.1"], "landscape.learning_rates.adamax"),
    (["landscape=cliff", "landscape.width=2"], "landscape.width=2.0"),
])
def test_bad_values_are_refused_in_one_line(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        validated(*overrides)
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
def test_a_learning_rate_schedule_applies_to_every_optimizer(tmp_path):
    """SGD on (x² + κy²)/2 under a 4-step warmup: x is multiplied by 1 - η·f(t) per step."""
    cfg, optimizers = validated("landscape=ill_conditioned", "optimizers=[sgd,keras_sgd]",
                                "schedule=warmup", "schedule.warmup_steps=4", "steps=8",
                                "tracking.enabled=false", f"output_dir={tmp_path}",
                                "grid_points=3", "gif_frames=2")
    eta, x0 = cfg.landscape.learning_rates.sgd, cfg.landscape.start[0]
    want = x0 * np.cumprod([1.0] + [1 - eta * min(t / 4, 1.0) for t in range(8)])
    result = L.run(cfg, optimizers=optimizers, out=open(os.devnull, "w"))
    for label in ("sgd", "keras_sgd"):
        (traj,) = [t for t in result["trajectories"] if t.label == label]
        np.testing.assert_allclose(traj.points[:, 0], want, rtol=1e-5)
