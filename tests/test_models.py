"""Tests for experiments.models: every model on every compatible dataset shape, the MNIST-1D presets."""

import dataclasses
import math

import numpy as np
import pytest

from experiments import models
from experiments.data import DATASETS
from experiments.models import MODEL_NAMES, MODEL_PARAMS, build_model, check_input_shape
from light import run_light

SHAPES = sorted({spec.input_shape for spec in DATASETS.values()}, key=str)  # every dataset's
GENERIC = ("logreg", "mlp", "cnn", "rnn")
PRESETS = ("mnist1d_logreg", "mnist1d_mlp", "mnist1d_cnn", "mnist1d_gru")
SPECIAL = ("noisy_quadratic",)  # tested in tests/test_benchmark.py


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


def _compatible(name, shape):
    try:
        check_input_shape(name, shape)
    except ValueError:
        return False
    return True


def test_import_is_light():
    run_light("import experiments.models as m\n"
              "m.check_params('cnn', kernel_sizes=[3, 3]); m.check_input_shape('rnn', (40, 1))\n")


def test_registry_and_param_dataclasses():
    assert set(MODEL_NAMES) == set(GENERIC) | set(PRESETS) | set(SPECIAL) == set(MODEL_PARAMS)
    assert MODEL_PARAMS["logreg"] is models.LogRegParams
    assert MODEL_PARAMS["mlp"] is models.MLPParams
    assert MODEL_PARAMS["cnn"] is models.CNNParams
    assert MODEL_PARAMS["rnn"] is models.RNNParams
    for name, cls in MODEL_PARAMS.items():
        assert dataclasses.is_dataclass(cls)
        defaults = cls()
        # the fields are exactly the keyword arguments build_model accepts
        assert models.check_params(name, **dataclasses.asdict(defaults)) == defaults
    # the only differences between presets and generic models are their defaults
    assert models.MNIST1DMLPParams().residual and not models.MLPParams().residual
    assert all(MODEL_PARAMS[p]().initializer == "torch" for p in PRESETS)


def test_compatibility():
    incompatible = {(n, s) for n in MODEL_NAMES for s in SHAPES if not _compatible(n, s)}
    # only the tabular shapes are refused, and only by the spatial models
    assert incompatible == {(n, s) for n in ("cnn", "rnn", "mnist1d_cnn", "mnist1d_gru")
                            for s in ((30,), (100,))}


@pytest.mark.parametrize(
    "name, shape",
    [(n, s) for n in GENERIC + PRESETS for s in SHAPES if _compatible(n, s)],
    ids=lambda v: v if isinstance(v, str) else "x".join(map(str, v)),
)
@pytest.mark.slow
def test_builds_outputs_logits_and_trains_one_step(keras, name, shape):
    num_classes = 2 if shape == (30,) else 10
    model = build_model(name, shape, num_classes)
    assert model.name == name
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names) and names[-1] == "logits"
    assert model.get_layer("logits").activation is keras.activations.linear  # logits, no softmax
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, *shape)).astype("float32")
    y = np.arange(8) % num_classes
    out = np.asarray(model(x))
    assert out.shape == (8, num_classes) and np.isfinite(out).all()
    assert not np.allclose(out.sum(axis=1), 1.0)
    if name in PRESETS and shape != (40, 1):
        return  # same builder as the generic model, which is trained on this shape
    before = [w.copy() for w in model.get_weights()]
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,  # one step: skip graph tracing, keep the suite fast
    )
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert all(changed), [w.name for w, c in zip(model.weights, changed) if not c]


# Parameter counts of the benchmark's PyTorch modules (greydanus/mnist1d notebooks/models.py),
# for 40 inputs and 10 classes, worked out by hand:
#   LinearBase: 40*10 + 10                                                        =    410
#   MLPBase:    (40*100 + 100) + (100*100 + 100) + (100*10 + 10)                  = 15 210
#   ConvBase:   conv1 1*25*5 + 25 = 150; conv2, conv3 25*25*3 + 25 = 1900 each;
#               lengths 40 -> (40+2-5)//2+1 = 19 -> 10 -> 5, so Linear(5*25=125, 10) = 1260;
#               150 + 1900 + 1900 + 1260                                          =  5 210
#   GRUBase:    per direction 3 gates * (1*6 + 6*6 + 6 + 6) = 162, two directions = 324;
#               Linear(2*6*40 = 480, 10) = 4810; 324 + 4810                       =  5 134
BENCHMARK_PARAMS = {
    "mnist1d_logreg": (410, {"logits": 410}),
    "mnist1d_mlp": (15_210, {"dense_1": 4_100, "dense_2": 10_100, "logits": 1_010}),
    "mnist1d_cnn": (5_210, {"conv_1": 150, "conv_2": 1_900, "conv_3": 1_900, "logits": 1_260}),
    "mnist1d_gru": (5_134, {"gru": 324, "logits": 4_810}),
}


@pytest.mark.parametrize("name", PRESETS)
def test_mnist1d_presets_match_the_benchmark(keras, name):
    total, per_layer = BENCHMARK_PARAMS[name]
    model = build_model(name, (40, 1), 10)
    assert model.count_params() == total
    for layer, count in per_layer.items():
        assert model.get_layer(layer).count_params() == count, layer
    generic = build_model(name.replace("mnist1d_", "").replace("gru", "rnn"), (40, 1), 10)
    assert generic.count_params() == total  # the generic defaults share the benchmark sizes


def test_mnist1d_cnn_geometry(keras):
    model = build_model("mnist1d_cnn", (40, 1), 10)
    lengths = [model.get_layer(f"conv_{i}").output.shape[1] for i in (1, 2, 3)]
    assert lengths == [19, 10, 5]
    assert model.get_layer("conv_1").kernel.shape == (5, 1, 25)
    assert model.get_layer("flatten").output.shape[1] == 125


def test_mnist1d_mlp_is_residual_like_the_benchmark(keras):
    model = build_model("mnist1d_mlp", (40, 1), 10)
    x = np.random.default_rng(1).normal(size=(4, 40, 1)).astype("float32")
    w1, b1 = model.get_layer("dense_1").get_weights()
    w2, b2 = model.get_layer("dense_2").get_weights()
    w3, b3 = model.get_layer("logits").get_weights()
    h = np.maximum(x.reshape(4, 40) @ w1 + b1, 0)
    h = h + np.maximum(h @ w2 + b2, 0)
    np.testing.assert_allclose(np.asarray(model(x)), h @ w3 + b3, rtol=1e-4, atol=1e-4)


def test_torch_initialisation_bounds(keras):
    cnn = build_model("mnist1d_cnn", (40, 1), 10)
    for layer, fan_in in (("conv_1", 5), ("conv_2", 75), ("conv_3", 75), ("logits", 125)):
        bound = 1 / math.sqrt(fan_in)
        for w in cnn.get_layer(layer).get_weights():  # kernel and bias alike
            assert np.abs(w).max() <= bound and np.abs(w).max() > 0.5 * bound, layer
    gru = build_model("mnist1d_gru", (40, 1), 10)
    for w in gru.get_layer("gru").get_weights():
        assert np.abs(w).max() <= 1 / math.sqrt(6) and np.abs(w).max() > 0.2
    plain = build_model("cnn", (40, 1), 10)
    assert not plain.get_layer("conv_1").bias.numpy().any()  # Keras init: zero biases


@pytest.mark.slow
def test_mnist1d_presets_train_in_graph_mode(keras):
    """One compiled (tf.function) step, as the trainer runs them (the GRU's eager step above
    is enough for it: tracing a GRU costs seconds)."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(16, 40, 1)).astype("float32"), np.arange(16) % 10
    for name in ("mnist1d_logreg", "mnist1d_mlp", "mnist1d_cnn"):
        model = build_model(name, (40, 1), 10)
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        loss = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"][0]
        assert np.isfinite(loss) and loss < 2 * math.log(10)  # starts near chance (log 10)


def test_configurable_variants(keras):
    mlp = build_model("mlp", (30,), 2, depth=3, width=7, activation="tanh",
                      initializer="he_normal", residual=True)
    assert [layer.name for layer in mlp.layers] == [
        "input", "flatten", "dense_1", "dense_2", "residual_2", "dense_3", "residual_3", "logits"
    ]
    assert mlp.get_layer("dense_2").activation is keras.activations.tanh
    assert build_model("mlp", (30,), 2, depth=0).count_params() == 31 * 2  # = logreg
    rnn = build_model("rnn", (40, 1), 10, units=6, bidirectional=False, readout="last")
    assert rnn.count_params() == 3 * (6 + 36 + 12) + (6 * 10 + 10)
    rows = build_model("rnn", (28, 28, 1), 10, readout="last")
    assert rows.get_layer("rows").output.shape[1:] == (28, 28)  # 28 steps of 28 pixels
    cnn = build_model("cnn", (28, 28, 1), 10, channels=4, kernel_sizes=[3, 3], stride=1,
                      padding=0)
    assert cnn.get_layer("conv_2").output.shape[1:] == (24, 24, 4)
    assert "pad_1" not in [layer.name for layer in cnn.layers]
    for activation in models.ACTIVATIONS:
        build_model("mlp", (4,), 2, depth=1, width=3, activation=activation)
    for initializer in models.INITIALIZERS:
        build_model("mlp", (4,), 2, depth=1, width=3, initializer=initializer)


def test_param_schemas_work_with_omegaconf():
    omegaconf = pytest.importorskip("omegaconf")
    for name, cls in MODEL_PARAMS.items():
        fields = [(f.name, f.type, f) for f in dataclasses.fields(cls)]
        schema = dataclasses.make_dataclass(
            f"{name}_model", [("name", str, dataclasses.field(default=name))] + fields
        )
        params = omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.structured(schema))
        assert params.pop("name") == name
        assert models.check_params(name, **params) == cls()
    cfg = omegaconf.OmegaConf.merge(omegaconf.OmegaConf.structured(models.CNNParams),
                                    {"kernel_sizes": [7, 3]})
    assert models.check_params("cnn", **cfg).kernel_sizes == (7, 3)  # a ListConfig is fine


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("transformer", {}, r"unknown model 'transformer'; valid names: logreg, mlp, cnn, rnn"),
        ("mlp", {"widht": 3}, r"unknown parameter\(s\) 'widht' for model 'mlp'; valid "
                              r"parameters: depth, width, activation, initializer, residual"),
        ("mlp", {"depth": -1}, r"depth=-1 is not valid for model 'mlp': expected an integer >= 0"),
        ("mlp", {"depth": True}, r"depth=True is not valid"),
        ("mlp", {"width": 0}, r"width=0 is not valid for model 'mlp': expected an integer >= 1"),
        ("mlp", {"width": 2.5}, r"width=2.5 is not valid"),
        ("mlp", {"activation": "relux"}, r"activation='relux' is not valid for model 'mlp'; "
                                         r"choose one of: relu, gelu, tanh"),
        ("cnn", {"initializer": "xavier"}, r"initializer='xavier' is not valid for model "
                                           r"'cnn'; choose one of: glorot_uniform, .*torch"),
        ("mlp", {"residual": "yes"}, r"residual='yes' is not valid for model 'mlp': expected "
                                     r"true or false"),
        ("cnn", {"kernel_sizes": []}, r"kernel_sizes for model 'cnn' must be a non-empty list"),
        ("cnn", {"kernel_sizes": "5,3"}, r"kernel_sizes for model 'cnn' must be"),
        ("cnn", {"kernel_sizes": [5, 0]}, r"kernel_sizes for model 'cnn' must be"),
        ("cnn", {"stride": 0}, r"stride=0 is not valid"),
        ("cnn", {"padding": -1}, r"padding=-1 is not valid"),
        ("cnn", {"channels": 0}, r"channels=0 is not valid"),
        ("rnn", {"units": 0}, r"units=0 is not valid"),
        ("rnn", {"readout": "mean"}, r"readout='mean' is not valid for model 'rnn'; choose one "
                                     r"of: flatten, last"),
        ("mnist1d_gru", {"bidirectional": 1}, r"bidirectional=1 is not valid"),
    ],
)
def test_bad_model_arguments(name, params, match):
    with pytest.raises(ValueError, match=match):
        models.check_params(name, **params)
    with pytest.raises(ValueError, match=match):
        build_model(name, (40, 1), 10, **params)


@pytest.mark.parametrize(
    "name, shape, num_classes, match",
    [
        ("cnn", (30,), 2, r"'cnn' needs a sequence \(length, channels\) or an image"),
        ("rnn", (30,), 2, r"'rnn' needs a sequence \(steps, features\) or an image"),
        ("cnn", (2, 1), 10, r"input_shape=\(2, 1\) is too small for model 'cnn': conv_1"),
        ("cnn", (8, 8, 1), 10, None),  # the digits images just fit (8 -> 3 -> 2 -> 1)
        ("mlp", (40, 0), 10, r"input_shape must be a non-empty list of integers >= 1"),
        ("mlp", (), 10, r"input_shape must be"),
        ("mlp", (40, 1), 1, r"num_classes must be an integer >= 2, got 1"),
    ],
)
def test_bad_shapes(keras, name, shape, num_classes, match):
    if match is None:
        build_model(name, shape, num_classes)
        return
    with pytest.raises(ValueError, match=match):
        build_model(name, shape, num_classes)
