"""Loss surfaces (experiments.surface, ``python -m experiments.surface``): directions,
grids against the model's own loss, a tiny tracked run and the same surface read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments.surface.config import register_schemas as register_surface_schemas
from experiments import surface as surfaces
from experiments.core.checks import ConfigError

register_surface_schemas()

CONF = Path(__file__).resolve().parents[1] / "conf"


def make_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("surface", overrides=list(overrides))


def test_filter_normalisation_is_per_filter():
    rng = np.random.default_rng(0)
    shapes = [(5, 4), (4,), (3, 3, 2, 6), (6,)]
    theta = rng.standard_normal(sum(int(np.prod(s)) for s in shapes)) * 3
    d = surfaces.filter_normalized_direction(theta, shapes, np.random.default_rng(1))
    offset = 0
    for shape in shapes:
        size = int(np.prod(shape))
        w, v = theta[offset:offset + size].reshape(shape), d[offset:offset + size].reshape(shape)
        offset += size
        if len(shape) == 1:
            assert not v.any()  # biases: no direction
            continue
        axes = tuple(range(len(shape) - 1))
        norms = np.sqrt(np.sum(v ** 2, axis=axes))
        assert norms.shape == (shape[-1],)
        assert np.allclose(norms, np.sqrt(np.sum(w ** 2, axis=axes)))
        # per filter, not per tensor: the filters' norms differ
        assert np.ptp(norms) > 0.1


def test_pca_directions_are_orthonormal_and_span_a_planar_path():
    rng = np.random.default_rng(0)
    origin = rng.standard_normal(50)
    a, b = rng.standard_normal(50), rng.standard_normal(50)
    t = np.linspace(0, 1, 9)[:, None]
    planar = [origin + t * a + t ** 2 * b, origin + t * b - t * a]
    directions, explained = surfaces.pca_directions(planar, origin)
    assert np.allclose(directions @ directions.T, np.eye(2), atol=1e-12)
    assert explained == pytest.approx(1.0)
    # every point lies in the plane: it is its own projection
    for path in planar:
        coords = (path - origin) @ directions.T
        assert np.allclose(origin + coords @ directions, path, atol=1e-10)
    noisy = [p + 0.3 * rng.standard_normal(p.shape) for p in planar]
    assert surfaces.pca_directions(noisy, origin)[1] < 1.0


@pytest.mark.parametrize("override,message", [
    ("optimizers=[sgd,bogus]", "optimizers: 'bogus' is not an optimizer option"),
    ("grid_points=1", r"grid_points=1 is out of range: valid values are in \[2, inf\)"),
    ("center=adagrad", "center='adagrad' is not one of optimizers: sgd, momentum, adam"),
    ("trainer.weights_every_n_steps=0", "trainer.weights_every_n_steps=0 is out of range"),
    ("trainer.loss=l1", "optimizers: sgd: trainer.loss='l1' is not valid"),
])
def test_bad_surface_settings_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        surfaces.validate(make_cfg(override))


TINY = ["optimizers=[sgd,adam]", "dataset=breast_cancer", "model=mlp", "model.depth=1",
        "model.width=3", "trainer.epochs=1", "trainer.max_steps=6", "trainer.batch_size=64",
        "trainer.weights_every_n_steps=2", "+learning_rates.sgd=0.1", "line_points=7",
        "grid_points=4", "plane_points=3", "gif_frames=3", "samples=100",
        "tracking.log_plots=false"]


def _keras_loss(model, theta, x, y):
    """The loss at flat weights ``theta``, the plain Keras way: set the weights, call."""
    import keras

    shapes = [tuple(v.shape) for v in model.trainable_variables]
    parts = np.split(theta, np.cumsum([int(np.prod(s)) for s in shapes])[:-1])
    for v, p, s in zip(model.trainable_variables, parts, shapes):
        v.assign(p.reshape(s).astype(np.float32))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return float(loss(y, model(x, training=False)))


@pytest.mark.slow
def test_tiny_surface_is_tracked_and_its_grids_are_the_models_loss(tmp_path, shared_store):
    from mlflow.tracking import MlflowClient

    from experiments.curvature import subset
    from experiments.data import load_dataset
    from experiments.models import build_model

    uri = shared_store
    cfg = make_cfg(*TINY, f"tracking.uri={uri}", f"output_dir={tmp_path / 'out'}")
    result = surfaces.run(cfg)
    grids, paths = result["grids"], result["paths"]
    assert [p.label for p in paths] == ["sgd", "adam"] and result["shared_init"]
    assert list(paths[0].steps) == [0, 2, 4, 6]
    names = sorted(Path(f).name for f in result["files"])
    assert names == ["contour.png", "lines.png", "paths.gif", "paths.png", "surface.npz"]
    assert grids["contour"].shape == (4, 4) and grids["plane"].shape == (3, 3)
    directions = grids["plane_directions"]
    assert np.allclose(directions @ directions.T, np.eye(2), atol=1e-6)

    # every grid value is the model's cross-entropy at those weights (through Keras)
    splits = load_dataset("breast_cancer", seed=0, val_fraction=0.1, test_fraction=0.2)
    rows = subset(len(splits.x_train), 100, 0)
    x, y = splits.x_train[rows], splits.y_train[rows]
    model = build_model("mlp", (30,), 2, depth=1, width=3)
    sgd, adam = (p.theta.astype(np.float64) for p in paths)
    axis, (d1, d2) = grids["contour_axis"], grids["contour_directions"]
    for i, j in ((0, 0), (1, 3), (3, 2)):
        expected = _keras_loss(model, sgd[-1] + axis[j] * d1 + axis[i] * d2, x, y)
        assert grids["contour"][i, j] == pytest.approx(expected, rel=1e-4)
    xs, ys = grids["plane_x"], grids["plane_y"]
    expected = _keras_loss(model, sgd[0] + xs[2] * directions[0] + ys[1] * directions[1], x, y)
    assert grids["plane"][1, 2] == pytest.approx(expected, rel=1e-4)
    ts = grids["line_t"]
    assert np.allclose(ts, [-0.25, 0, 0.25, 0.5, 0.75, 1, 1.25])
    assert grids["line/init/adam"][5] == pytest.approx(_keras_loss(model, adam[-1], x, y),
                                                       rel=1e-4)
    assert grids["line/init/adam"][1] == pytest.approx(_keras_loss(model, adam[0], x, y),
                                                       rel=1e-4)
    assert grids["line/sgd/adam"][3] == pytest.approx(
        _keras_loss(model, (sgd[-1] + adam[-1]) / 2, x, y), rel=1e-4)
    assert grids["path_loss/sgd"][0] == grids["path_loss/adam"][0]  # the shared start

    # tracked: the surface run with its grids, a nested training run per optimizer
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["runs"] == ",".join(result["runs"])
    for run_id in result["runs"]:
        assert client.get_run(run_id).data.tags["mlflow.parentRunId"] == result["run_id"]
    saved = np.load(client.download_artifacts(result["run_id"], "data/surface.npz",
                                              str(tmp_path)))
    assert np.array_equal(saved["contour"], grids["contour"])

    # the same surface from the runs read back by id
    runs = ",".join(result["runs"])
    again = surfaces.run(make_cfg(*TINY, f"tracking.uri={uri}", f"runs=[{runs}]",
                                  f"output_dir={tmp_path / 'again'}"))
    assert [p.label for p in again["paths"]] == ["sgd", "adam"]
    for key in ("contour", "plane", "line/init/sgd", "line/sgd/adam"):
        assert np.allclose(again["grids"][key], grids[key], rtol=1e-6), key


def test_a_missing_run_is_refused_before_the_surface_run_exists(tmp_path, shared_store):
    from mlflow.tracking import MlflowClient

    def runs():
        client = MlflowClient(tracking_uri=shared_store)
        ids = [e.experiment_id for e in client.search_experiments()]
        return len(client.search_runs(ids)) if ids else 0

    before = runs()
    with pytest.raises(ConfigError, match="runs: 0123abcd has no config/config.yaml"):
        surfaces.run(make_cfg(f"tracking.uri={shared_store}", "runs=[0123abcd]",
                              f"output_dir={tmp_path / 'out'}"))
    assert runs() == before and not (tmp_path / "out").exists()
