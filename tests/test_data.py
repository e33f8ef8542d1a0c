"""Tests for experiments.data: offline datasets, splits, standardisation, cache, Keras-cache loaders."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import inspect
import io
import os
import pickle
import socket
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import data
from experiments.data import (
    DATASETS,
    DatasetParams,
    DatasetUnavailable,
    Splits,
    keras_cache,
    load_dataset,
)

OFFLINE = ("digits", "breast_cancer", "mnist5k", "mnist1d", "noisy_quadratic")
ONLINE = ("mnist", "fashion_mnist", "cifar10")

# name: (input_shape, num_classes, kind, (n_train, n_val, n_test)) with the default arguments
EXPECTED = {
    "digits": ((8, 8, 1), 10, "image", (1258, 180, 359)),  # 1797: test 359.4 -> 359, val 179.7 -> 180
    "breast_cancer": ((30,), 2, "tabular", (398, 57, 114)),  # 569: 113.8 -> 114, 56.9 -> 57
    "mnist5k": ((28, 28, 1), 10, "image", (3500, 500, 1000)),
    "mnist1d": ((40, 1), 10, "sequence", (3600, 400, 1000)),  # official 4000 + 1000 test
    "noisy_quadratic": ((100,), 2, "tabular", (900, 100, 1000)),  # 1000 + 1000 test draws
}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("dataset-cache")


@pytest.fixture(scope="module")
def offline(shared_cache):
    """Every offline dataset with default arguments, built once (cold) for the module."""
    rng_before = np.random.get_state()
    loaded = {name: load_dataset(name, cache_dir=shared_cache) for name in OFFLINE}
    rng_after = np.random.get_state()
    rng_kept = rng_before[0] == rng_after[0] and all(
        np.array_equal(a, b) for a, b in zip(rng_before[1:], rng_after[1:])
    )
    return loaded, rng_kept


# --------------------------------------------------------------------------------------
# import weight
# --------------------------------------------------------------------------------------


def test_import_and_unavailable_path_stay_light(tmp_path):
    """Importing the module, validating params and a missing online dataset import no TF."""
    from light import run_light

    (tmp_path / "keras").mkdir()
    run_light("import experiments.data as d\n"
              "d.check_params('mnist', limit=5)\n"
              "try:\n"
              f"    d.load_dataset('mnist', cache_dir={str(tmp_path / 'c')!r})\n"
              "except d.DatasetUnavailable:\n"
              "    pass\n"
              "else:\n"
              "    raise SystemExit('no DatasetUnavailable')\n",
              env={**os.environ, "KERAS_HOME": str(tmp_path / "keras")})


# --------------------------------------------------------------------------------------
# registry and offline datasets
# --------------------------------------------------------------------------------------


def test_registry():
    assert set(DATASETS) == set(OFFLINE) | set(ONLINE)
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert spec.kind in data.KINDS
        assert spec.offline == (name in OFFLINE)
        assert spec.num_classes >= 2 and all(d >= 1 for d in spec.input_shape)
    assert data.dataset_names() == tuple(DATASETS)
    for name in ONLINE:
        assert DATASETS[name].official_test
    assert DATASETS["mnist1d"].official_test and not DATASETS["digits"].official_test


@pytest.mark.parametrize("name", OFFLINE)
@pytest.mark.slow
def test_offline_dataset_shapes_and_dtypes(offline, name):
    splits = offline[0][name]
    shape, classes, kind, sizes = EXPECTED[name]
    assert isinstance(splits, Splits)
    assert (splits.name, splits.input_shape, splits.num_classes, splits.kind) == (
        name, shape, classes, kind
    )
    assert tuple(splits.sizes().values()) == sizes
    for split in ("train", "val", "test"):
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.shape == (len(y), *shape)
        assert np.isfinite(x).all()
        # every split holds every class
        assert set(np.unique(y)) == set(range(classes)), split
    assert splits.summary()["n_train"] == sizes[0]


def test_offline_loading_keeps_global_rng(offline):
    """mnist1d seeds np.random/random globally; the loader restores the caller's state."""
    assert offline[1]


@pytest.mark.parametrize("name", OFFLINE)
def test_splits_are_disjoint_and_cover_the_source(offline, name):
    splits = offline[0][name]
    idx = splits.indices
    assert {k: len(v) for k, v in idx.items()} == splits.sizes()
    if DATASETS[name].official_test:
        pool = np.concatenate([idx["train"], idx["val"]])
        np.testing.assert_array_equal(idx["test"], np.arange(len(splits.y_test)))
    else:
        pool = np.concatenate([idx["train"], idx["val"], idx["test"]])
    assert len(np.unique(pool)) == len(pool)  # disjoint
    np.testing.assert_array_equal(np.sort(pool), np.arange(len(pool)))  # and complete


def test_split_rows_are_the_source_rows(tmp_path):
    from sklearn.datasets import load_digits

    raw = load_digits().images.astype(np.float32)[..., None] / np.float32(16)
    target = load_digits().target
    splits = load_dataset("digits", standardize=False, cache_dir=tmp_path)
    for split in ("train", "val", "test"):
        rows = splits.indices[split]
        np.testing.assert_array_equal(getattr(splits, f"x_{split}"), raw[rows])
        np.testing.assert_array_equal(getattr(splits, f"y_{split}"), target[rows])
    assert 0.0 <= splits.x_train.min() and splits.x_train.max() <= 1.0


@pytest.mark.slow
def test_mnist1d_uses_the_benchmark_test_split(offline, monkeypatch, tmp_path):
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()
    try:
        bench = make_dataset(get_dataset_args())  # the published defaults (seed 42)
    finally:
        np.random.set_state(state)
    splits = offline[0]["mnist1d"]
    np.testing.assert_array_equal(splits.y_test, bench["y_test"])
    np.testing.assert_array_equal(splits.y_train, bench["y"][splits.indices["train"]])
    np.testing.assert_array_equal(splits.y_val, bench["y"][splits.indices["val"]])
    # x: the benchmark's own sequences, standardised with statistics of our train rows
    train = bench["x"][splits.indices["train"]]
    mean, sd = train.mean(0), np.maximum(train.std(0), DATASETS["mnist1d"].std_floor)
    for split, x in (("test", bench["x_test"]), ("val", bench["x"][splits.indices["val"]])):
        np.testing.assert_allclose(getattr(splits, f"x_{split}")[..., 0], (x - mean) / sd,
                                   rtol=1e-5, atol=1e-5)
    # the test split does not depend on our seed; validation does
    raw = data.RawData(bench["x"][..., None], bench["y"], bench["x_test"][..., None], bench["y_test"])
    monkeypatch.setitem(DATASETS, "mnist1d", dataclasses.replace(DATASETS["mnist1d"], build=lambda: raw))
    other = load_dataset("mnist1d", seed=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(other.y_test, bench["y_test"])
    assert not np.array_equal(np.sort(other.indices["val"]), np.sort(splits.indices["val"]))


def test_split_is_seeded(offline, tmp_path):
    first = offline[0]["digits"]
    again = load_dataset("digits", seed=0, cache_dir=tmp_path / "a")  # rebuilt, not cached
    assert not again.from_cache
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(first.indices[split], again.indices[split])
        np.testing.assert_array_equal(getattr(first, f"x_{split}"), getattr(again, f"x_{split}"))
    other = load_dataset("digits", seed=1, cache_dir=tmp_path / "a")
    for split in ("train", "val", "test"):
        assert not np.array_equal(np.sort(first.indices[split]), np.sort(other.indices[split]))
    assert other.sizes() == first.sizes()


@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_standardisation_is_fitted_on_train_only(offline, shared_cache, name):
    std = offline[0][name]
    raw = load_dataset(name, standardize=False, cache_dir=shared_cache)
    np.testing.assert_array_equal(std.indices["train"], raw.indices["train"])
    mean, sd = raw.x_train.mean(0, dtype=np.float64), raw.x_train.std(0, dtype=np.float64)
    floor = DATASETS[name].std_floor
    # train: mean 0 everywhere, std 1 wherever the raw std is above the floor
    np.testing.assert_allclose(std.x_train.mean(0), 0.0, atol=1e-5)
    live = sd > floor
    assert live.mean() > 0.5
    np.testing.assert_allclose(std.x_train.std(0)[live], 1.0, rtol=1e-4)
    # val/test use the train statistics, so they are not exactly standardised themselves
    for split in ("val", "test"):
        x_std, x_raw = getattr(std, f"x_{split}"), getattr(raw, f"x_{split}")
        expected = (x_raw - mean) / np.maximum(sd, floor)
        np.testing.assert_allclose(x_std, expected, rtol=1e-4, atol=1e-4)
        assert np.abs(x_std.mean(0)).max() > 1e-3
        assert np.abs(x_std.std(0)[live] - 1).max() > 1e-3


def test_pixel_std_floor_bounds_rare_pixels(offline):
    splits = offline[0]["mnist5k"]
    # border pixels are (almost) always 0: without the floor z reaches ~70 on this data
    assert np.abs(splits.x_train).max() <= 1.0 / DATASETS["mnist5k"].std_floor + 1e-3


def test_limit_caps_train_only(offline, tmp_path):
    full = offline[0]["digits"]
    small = load_dataset("digits", limit=50, cache_dir=tmp_path)
    assert small.sizes() == {"train": 50, "val": full.sizes()["val"], "test": full.sizes()["test"]}
    assert set(np.unique(small.y_train)) == set(range(10))
    assert set(small.indices["train"]) <= set(full.indices["train"])
    np.testing.assert_array_equal(small.indices["val"], full.indices["val"])
    np.testing.assert_allclose(small.x_train.mean(0), 0.0, atol=1e-5)  # fitted on the 50
    big = load_dataset("digits", limit=10_000, cache_dir=tmp_path)
    np.testing.assert_array_equal(big.indices["train"], full.indices["train"])


# --------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------


def _failing_builder(monkeypatch, name):
    def refuse():
        raise AssertionError(f"{name} was rebuilt instead of read from the cache")

    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], build=refuse))


def test_cache_is_hit_the_second_time(tmp_path, monkeypatch):
    first = load_dataset("breast_cancer", seed=3, cache_dir=tmp_path)
    assert not first.from_cache and Path(first.cache_path).is_file()
    assert Path(first.cache_path).parent == tmp_path
    _failing_builder(monkeypatch, "breast_cancer")
    second = load_dataset("breast_cancer", seed=3, cache_dir=tmp_path)
    assert second.from_cache and second.cache_path == first.cache_path
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(first.indices[split], second.indices[split])
    assert (second.num_classes, second.input_shape, second.kind) == (2, (30,), "tabular")
    # every argument is part of the key: any change misses the cache and rebuilds
    for kwargs in ({"seed": 4}, {"val_fraction": 0.2}, {"test_fraction": 0.3},
                   {"standardize": False}, {"limit": 100}):
        with pytest.raises(AssertionError, match="rebuilt"):
            load_dataset("breast_cancer", **{"seed": 3, **kwargs}, cache_dir=tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_corrupt_cache_is_rebuilt(tmp_path, damage):
    good = load_dataset("breast_cancer", cache_dir=tmp_path)
    path = Path(good.cache_path)
    if damage == "garbage":
        path.write_bytes(b"this is not an npz file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # a valid cache file written for other arguments
        other = load_dataset("breast_cancer", seed=9, cache_dir=tmp_path)
        path.write_bytes(Path(other.cache_path).read_bytes())
    rebuilt = load_dataset("breast_cancer", cache_dir=tmp_path)
    assert not rebuilt.from_cache
    np.testing.assert_array_equal(rebuilt.x_train, good.x_train)
    np.testing.assert_array_equal(rebuilt.indices["test"], good.indices["test"])
    assert load_dataset("breast_cancer", cache_dir=tmp_path).from_cache  # and rewritten


def test_default_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == tmp_path / "xdg" / "optimizer-lab" / "datasets"
    splits = load_dataset("breast_cancer")
    assert Path(splits.cache_path).parent == tmp_path / "xdg" / "optimizer-lab" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_cache_dir() == tmp_path / "home" / ".cache" / "optimizer-lab" / "datasets"


def test_unwritable_cache_dir_only_warns(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    splits = load_dataset("breast_cancer", cache_dir=blocker / "cache")
    assert splits.cache_path is None and splits.sizes()["train"] == 398
    assert "could not write dataset cache" in caplog.text


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(ValueError) as e:
        load_dataset("mnsit")
    assert "'mnsit'" in str(e.value)
    for name in DATASETS:
        assert name in str(e.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"val_fraction": 0.0}, r"val_fraction must be a number strictly between 0 and 1.*0\.0"),
        ({"val_fraction": 1.0}, "val_fraction must be"),
        ({"test_fraction": -0.1}, "test_fraction must be"),
        ({"test_fraction": 1.5}, "test_fraction must be"),
        ({"test_fraction": float("nan")}, "test_fraction must be"),
        ({"val_fraction": True}, "val_fraction must be"),
        ({"val_fraction": "0.1"}, "val_fraction must be"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, r"val_fraction \+ test_fraction must be below 1"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"seed": 1.5}, "seed must be a non-negative integer"),
        ({"limit": 0}, "limit must be a positive integer"),
        ({"limit": 2.5}, "limit must be a positive integer"),
        ({"standardize": "yes"}, "standardize must be true or false"),
        ({"cache_dir": 3}, "cache_dir must be a path"),
    ],
)
def test_bad_arguments(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        load_dataset("digits", **kwargs)
    with pytest.raises(ValueError, match=match):
        data.check_params("digits", **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"val_fraction": 0.001}, r"val split of 2 sample\(s\) out of 1797 samples, fewer than its 10 classes"),
        ({"test_fraction": 0.004}, r"test split of 7 sample\(s\).*fewer than its 10 classes"),
        ({"val_fraction": 0.5, "test_fraction": 0.497}, r"train split of 5 sample\(s\)"),
        ({"limit": 5}, r"limit=5 is smaller than its 10 classes"),
    ],
)
def test_splits_that_would_lose_classes(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        load_dataset("digits", cache_dir=tmp_path, **kwargs)


def _fake_dataset(monkeypatch, x, y, official_test=None):
    spec = DATASETS["breast_cancer"]

    def build():
        if official_test is None:
            return data.RawData(x, y)
        return data.RawData(x, y, *official_test)

    monkeypatch.setitem(
        DATASETS, "breast_cancer",
        dataclasses.replace(spec, build=build, input_shape=x.shape[1:],
                            official_test=official_test is not None),
    )


def test_single_class_data_is_refused(monkeypatch, tmp_path):
    _fake_dataset(monkeypatch, np.ones((100, 30)), np.zeros(100, int))
    with pytest.raises(ValueError, match=r"single class \(\[0\]\).*at least two"):
        load_dataset("breast_cancer", cache_dir=tmp_path)


def test_class_too_small_for_three_splits(monkeypatch, tmp_path):
    y = np.array([0] * 60 + [1] * 2)
    _fake_dataset(monkeypatch, np.ones((62, 30)), y)
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have fewer than 3 samples"):
        load_dataset("breast_cancer", cache_dir=tmp_path)


def test_rare_class_missing_from_a_split(monkeypatch, tmp_path):
    # 3 samples of class 1 among 300: a 10 % validation split gets none of them
    y = np.array([0] * 297 + [1] * 3)
    _fake_dataset(monkeypatch, np.random.default_rng(0).normal(size=(300, 30)), y)
    with pytest.raises(ValueError, match=r"the (val|test) split would hold no sample of class\(es\) \[1\]"):
        load_dataset("breast_cancer", cache_dir=tmp_path)


def test_empty_official_test_split(monkeypatch, tmp_path):
    x, y = np.ones((100, 30)), np.arange(100) % 2
    _fake_dataset(monkeypatch, x, y, official_test=(np.ones((0, 30)), np.zeros(0, int)))
    with pytest.raises(ValueError, match="official test split is empty"):
        load_dataset("breast_cancer", cache_dir=tmp_path)


def test_dataset_params_mirror_load_dataset(tmp_path):
    sig = inspect.signature(load_dataset)
    keywords = {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}
    fields = {f.name: f.default for f in dataclasses.fields(DatasetParams)}
    assert fields == keywords
    params = data.check_params("breast_cancer", cache_dir=str(tmp_path), limit=40)
    assert params == DatasetParams(cache_dir=str(tmp_path), limit=40)
    splits = load_dataset("breast_cancer", **dataclasses.asdict(params))
    assert splits.sizes()["train"] == 40
    with pytest.raises(ValueError, match="unknown dataset 'nope'; valid names: digits"):
        data.check_params("nope")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'sead' for dataset 'digits'; "
                                         r"valid parameters: seed, val_fraction"):
        data.check_params("digits", sead=1)


def test_dataset_params_as_structured_config():
    """The config layer prepends ``name`` to the fields and hands the class to OmegaConf."""
    omegaconf = pytest.importorskip("omegaconf")
    fields = [(f.name, f.type, f) for f in dataclasses.fields(DatasetParams)]
    schema = dataclasses.make_dataclass(
        "digits_dataset", [("name", str, dataclasses.field(default="digits"))] + fields
    )
    cfg = omegaconf.OmegaConf.merge(omegaconf.OmegaConf.structured(schema), {"limit": 64})
    params = omegaconf.OmegaConf.to_container(cfg)
    assert data.check_params(params.pop("name"), **params).limit == 64
    with pytest.raises(omegaconf.errors.ValidationError):
        omegaconf.OmegaConf.merge(omegaconf.OmegaConf.structured(schema), {"limit": "many"})


# --------------------------------------------------------------------------------------
# online datasets through the Keras download cache
# --------------------------------------------------------------------------------------


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty KERAS_HOME, set after Keras was imported (the loader must still honour it)."""
    import keras  # noqa: F401  (imported first on purpose)

    home = tmp_path / "keras-home"
    (home / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        pytest.fail(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _spy(monkeypatch, module, attr):
    calls = []
    real = getattr(module, attr)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, attr, wrapper)
    return calls


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _accept_tiny_file(monkeypatch, name, path):
    """Our tiny file is not the real one: make its hash the expected one, here and in Keras."""
    from keras.src.utils import file_utils

    monkeypatch.setitem(data.KERAS_FILE_SHA256, name, _sha256(path))
    monkeypatch.setattr(file_utils, "validate_file", lambda *a, **k: True)


def _accept_tiny_files(monkeypatch, folder):
    """Our tiny files in ``folder`` are not the published ones: make their digests the
    expected ones (``data.FILE_DIGESTS``)."""
    for path in folder.iterdir():
        monkeypatch.setitem(data.FILE_DIGESTS, f"{folder.name}/{path.name}",
                            ("sha256", _sha256(path)))


def _check_against_source(splits, x_train, y_train, x_test, y_test, shape):
    """standardize=False splits hold exactly the source rows, scaled by 1/255."""
    assert splits.input_shape == shape and splits.x_train.shape[1:] == shape
    scaled = lambda a: a.astype(np.float32) / np.float32(255)  # noqa: E731
    np.testing.assert_array_equal(splits.x_test, scaled(x_test).reshape(-1, *shape))
    np.testing.assert_array_equal(splits.y_test, y_test.astype(np.int32))
    for split in ("train", "val"):
        rows = splits.indices[split]
        np.testing.assert_array_equal(getattr(splits, f"x_{split}"), scaled(x_train[rows]).reshape(-1, *shape))
        np.testing.assert_array_equal(getattr(splits, f"y_{split}"), y_train[rows].astype(np.int32))


def _tiny_images(n, shape, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_mnist_from_the_keras_cache(keras_home, no_network, monkeypatch, tmp_path):
    import keras
    from keras.src.backend import config

    x_train, y_train = _tiny_images(200, (28, 28), 0), np.repeat(np.arange(10), 20).astype(np.uint8)
    x_test, y_test = _tiny_images(50, (28, 28), 1), np.tile(np.arange(10), 5).astype(np.uint8)
    path = keras_home / "datasets" / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    _accept_tiny_file(monkeypatch, "mnist", path)
    calls = _spy(monkeypatch, keras.datasets.mnist, "load_data")
    home_before = config.keras_home()
    assert data.is_available("mnist")

    splits = load_dataset("mnist", standardize=False, cache_dir=tmp_path / "cache")
    assert calls, "keras.datasets.mnist.load_data() was not used"
    assert splits.sizes() == {"train": 180, "val": 20, "test": 50}
    assert splits.num_classes == 10 and splits.kind == "image"
    _check_against_source(splits, x_train, y_train, x_test, y_test, (28, 28, 1))
    assert config.keras_home() == home_before  # Keras' own home is restored afterwards
    assert path.is_file()


def _idx(path, array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_the_keras_cache(keras_home, no_network, monkeypatch, tmp_path):
    import keras

    folder = keras_home / "datasets" / "fashion-mnist"
    folder.mkdir()
    x_train, y_train = _tiny_images(100, (28, 28), 2), np.repeat(np.arange(10), 10).astype(np.uint8)
    x_test, y_test = _tiny_images(30, (28, 28), 3), np.tile(np.arange(10), 3).astype(np.uint8)
    _idx(folder / "train-images-idx3-ubyte.gz", x_train, 2051)
    _idx(folder / "train-labels-idx1-ubyte.gz", y_train, 2049)
    _idx(folder / "t10k-images-idx3-ubyte.gz", x_test, 2051)
    _idx(folder / "t10k-labels-idx1-ubyte.gz", y_test, 2049)
    _accept_tiny_files(monkeypatch, folder)
    calls = _spy(monkeypatch, keras.datasets.fashion_mnist, "load_data")

    splits = load_dataset("fashion_mnist", standardize=False, cache_dir=tmp_path / "cache")
    assert calls
    assert splits.sizes() == {"train": 90, "val": 10, "test": 30}
    _check_against_source(splits, x_train, y_train, x_test, y_test, (28, 28, 1))


def _cifar_batch(images_nhwc, labels):
    """A batch file as in cifar-10-python.tar.gz: a pickled dict of bytes keys, NCHW rows."""
    rows = images_nhwc.transpose(0, 3, 1, 2).reshape(len(images_nhwc), 3072)
    return pickle.dumps({b"data": rows, b"labels": list(map(int, labels))}, protocol=4)


@pytest.mark.parametrize(
    "layout", ["cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py"]
)
def test_cifar10_from_an_extracted_folder(layout, keras_home, no_network, monkeypatch, tmp_path):
    import keras.src.datasets.cifar as keras_cifar

    folder = keras_home / "datasets" / layout
    folder.mkdir(parents=True)
    x_train, y_train = _tiny_images(100, (32, 32, 3), 4), np.tile(np.arange(10), 10)
    x_test, y_test = _tiny_images(20, (32, 32, 3), 5), np.tile(np.arange(10), 2)
    for i in range(5):
        part = slice(20 * i, 20 * (i + 1))
        (folder / f"data_batch_{i + 1}").write_bytes(_cifar_batch(x_train[part], y_train[part]))
    (folder / "test_batch").write_bytes(_cifar_batch(x_test, y_test))
    _accept_tiny_files(monkeypatch, folder)
    calls = _spy(monkeypatch, keras_cifar, "load_batch")

    splits = load_dataset("cifar10", standardize=False, cache_dir=tmp_path / "cache")
    assert len(calls) == 6  # parsed by Keras' own (restricted) unpickler
    assert splits.sizes() == {"train": 90, "val": 10, "test": 20}
    _check_against_source(splits, x_train, y_train, x_test, y_test, (32, 32, 3))


@pytest.mark.slow
def test_cifar10_from_the_keras_archive(keras_home, no_network, monkeypatch, tmp_path):
    """The tarball route runs the real keras.datasets.cifar10.load_data().

    Keras assembles a fixed 5 x 10000 training array; each of our batches holds one image,
    which numpy broadcasts over its 10000 rows (so train row r is image r // 10000).
    """
    import keras

    x_train, y_train = _tiny_images(5, (32, 32, 3), 6), np.arange(5)
    x_test, y_test = _tiny_images(10, (32, 32, 3), 7), np.arange(10)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = [(f"data_batch_{i + 1}", _cifar_batch(x_train[i : i + 1], y_train[i : i + 1]))
                   for i in range(5)] + [("test_batch", _cifar_batch(x_test, y_test))]
        for fname, payload in members:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{fname}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    archive = keras_home / "datasets" / "cifar-10-batches-py-target_archive"
    archive.write_bytes(buf.getvalue())
    _accept_tiny_file(monkeypatch, "cifar10", archive)
    calls = _spy(monkeypatch, keras.datasets.cifar10, "load_data")

    splits = load_dataset("cifar10", standardize=False, limit=50, cache_dir=tmp_path / "cache")
    assert calls
    assert splits.sizes() == {"train": 50, "val": 5000, "test": 10}
    np.testing.assert_array_equal(np.bincount(splits.y_train), [10] * 5)
    _check_against_source(splits, np.repeat(x_train, 10000, axis=0), np.repeat(y_train, 10000),
                          x_test, y_test, (32, 32, 3))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mnist", "mnist.npz"),
        ("fashion_mnist", "fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz"),
        ("cifar10", "cifar-10-batches-py-target_archive"),
    ],
)
def test_missing_online_dataset_fails_fast_without_network(
    name, expected, keras_home, no_network, monkeypatch, tmp_path
):
    import keras
    import keras.src.datasets.cifar10
    import keras.src.datasets.fashion_mnist
    import keras.src.datasets.mnist
    from keras.src.utils import file_utils

    def refuse(*args, **kwargs):
        pytest.fail("keras get_file called for a dataset that is not in the cache")

    for module in (keras.utils, file_utils, keras.src.datasets.mnist,
                   keras.src.datasets.fashion_mnist, keras.src.datasets.cifar10):
        monkeypatch.setattr(module, "get_file", refuse)
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable) as e:
        load_dataset(name, cache_dir=tmp_path / "cache")
    assert time.perf_counter() - start < 1.0
    message = str(e.value)
    assert isinstance(e.value, RuntimeError)
    assert "\n" not in message and repr(name) in message
    assert str(keras_home / "datasets" / expected) in message
    assert "while online" in message and "copy" in message
    assert not data.is_available(name)
    with pytest.raises(DatasetUnavailable):
        data.check_available(name)
    assert not any((tmp_path / "cache").glob("*.npz"))  # nothing half-built was cached


def test_partial_fashion_mnist_names_the_missing_file(keras_home, no_network):
    folder = keras_home / "datasets" / "fashion-mnist"
    folder.mkdir()
    for fname in keras_cache._FASHION_FILES[:3]:
        (folder / fname).write_bytes(b"")
    with pytest.raises(DatasetUnavailable, match=r"missing: t10k-images-idx3-ubyte\.gz\)"):
        data.check_available("fashion_mnist")


@pytest.mark.parametrize("name, folder, files", [
    ("fashion_mnist", "fashion-mnist", keras_cache._FASHION_FILES),
    ("cifar10", "cifar-10-batches-py", keras_cache._CIFAR_BATCHES),
])
def test_every_cached_file_is_checked_by_its_digest(name, folder, files, keras_home,
                                                    no_network, monkeypatch):
    """Fashion-MNIST's .gz files and an extracted CIFAR-10 folder: a truncated file is
    refused in one line naming it, before TensorFlow or Keras (it used to fail with a
    traceback inside Keras, after TensorFlow had loaded)."""
    where = keras_home / "datasets" / folder
    where.mkdir(parents=True)
    for i, file in enumerate(files):
        (where / file).write_bytes(bytes(range(256)) * (i + 1))
    _accept_tiny_files(monkeypatch, where)
    data.check_available(name)  # whole files pass
    damaged = where / files[-1]
    damaged.write_bytes(damaged.read_bytes()[:100])  # a download cut short
    with pytest.raises(DatasetUnavailable) as refused:
        data.check_available(name)
    message = str(refused.value)
    assert f"{damaged} exists but its SHA-256 is not the published one (truncated" in message
    assert "\n" not in message
    monkeypatch.delitem(data.FILE_DIGESTS, f"{folder}/{files[0]}")
    with pytest.raises(KeyError):  # every file has its digest: none is read unchecked
        data.check_available(name)


def test_the_published_digests_cover_every_file():
    assert {f"fashion-mnist/{f}" for f in keras_cache._FASHION_FILES} | {
        f"cifar-10-batches-py/{f}" for f in keras_cache._CIFAR_BATCHES} == set(data.FILE_DIGESTS)
    assert all(len(d) == {"sha256": 64, "md5": 32}[a] for a, d in data.FILE_DIGESTS.values())


def test_wrong_file_is_not_handed_to_keras(keras_home, no_network, tmp_path):
    """Keras would re-download (and delete) a file whose hash is off; we stop before that."""
    path = keras_home / "datasets" / "mnist.npz"
    path.write_bytes(b"truncated download")
    with pytest.raises(DatasetUnavailable, match=r"SHA-256") as e:
        load_dataset("mnist", cache_dir=tmp_path / "cache")
    assert str(path) in str(e.value)
    assert path.read_bytes() == b"truncated download"


def test_downloads_are_refused_while_keras_loads(keras_home, no_network):
    from keras.src.utils import file_utils

    real_retrieve = file_utils.urlretrieve
    with keras_cache._keras_reads_from(data.keras_datasets_dir(), "mnist"):
        with pytest.raises(DatasetUnavailable, match="not available offline"):
            file_utils.get_file("other.npz", origin="https://example.invalid/other.npz")
    assert file_utils.urlretrieve is real_retrieve


def test_keras_home_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.keras_home() == tmp_path / ".keras"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert data.keras_home() == tmp_path / "kh"
    (tmp_path / "kh").mkdir()
    assert data.keras_datasets_dir() == tmp_path / "kh" / "datasets"


def test_the_cache_is_compressed(tmp_path):
    import zipfile

    splits = load_dataset("digits", cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    with zipfile.ZipFile(path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    again = load_dataset("digits", cache_dir=tmp_path)
    assert again.from_cache
    np.testing.assert_array_equal(again.x_train, splits.x_train)
