"""Datasets from the Keras download cache, checked before Keras is asked: a missing or
damaged file raises :class:`DatasetUnavailable` at once, naming the file and how to get it,
and no download is ever attempted."""

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from experiments.core.checks import Refusal
from experiments.data.raw import RawData


class DatasetUnavailable(Refusal, RuntimeError):
    """A dataset that needs a download is not in the local Keras cache (nothing is fetched)."""


#: SHA-256 that keras.datasets.<name>.load_data() checks the file against (copied from
#: keras/src/datasets/{mnist,cifar10}.py). On a mismatch Keras re-downloads, so we check first.
KERAS_FILE_SHA256 = {
    "mnist": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    "cifar10": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
}

#: The digest of every other file read from the Keras cache, by "<folder>/<file>": the four
#: Fashion-MNIST files (SHA-256), and the six batches of an extracted CIFAR-10 folder by the
#: MD5 that the dataset's page and torchvision publish (no SHA-256 of them is published; a
#: file that is not the published one, truncated or other, cannot match either).
FILE_DIGESTS = {
    "fashion-mnist/train-labels-idx1-ubyte.gz":
        ("sha256", "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"),
    "fashion-mnist/train-images-idx3-ubyte.gz":
        ("sha256", "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"),
    "fashion-mnist/t10k-labels-idx1-ubyte.gz":
        ("sha256", "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"),
    "fashion-mnist/t10k-images-idx3-ubyte.gz":
        ("sha256", "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229"),
    "cifar-10-batches-py/data_batch_1": ("md5", "c99cafc152244af753f735de768cd75f"),
    "cifar-10-batches-py/data_batch_2": ("md5", "d4bba439e000b95fd0a9bffe97cbabec"),
    "cifar-10-batches-py/data_batch_3": ("md5", "54ebc095f3ab1f0389bbae665268c751"),
    "cifar-10-batches-py/data_batch_4": ("md5", "634d18415352ddfa80567beed471001a"),
    "cifar-10-batches-py/data_batch_5": ("md5", "482c414d41f54cd18b22e5b47cb7c3cb"),
    "cifar-10-batches-py/test_batch": ("md5", "40351d587109b95175f43aff81a1287e"),
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


def _digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unavailable(name: str, expected: str, how: str) -> DatasetUnavailable:
    return DatasetUnavailable(
        f"dataset {name!r} is not available offline: expected {expected} "
        f"(Keras download cache; set KERAS_HOME to use another one). {how}"
    )


_NAMES = {"sha256": "SHA-256", "md5": "MD5"}


def _hash_checked(name: str, path: Path, algorithm: str = "sha256",
                  expected: str | None = None) -> None:
    """Raise ``DatasetUnavailable`` (one line) if ``path`` is not the published file:
    ``expected`` (default ``KERAS_FILE_SHA256[name]``) is its digest by ``algorithm``."""
    if _digest(path, algorithm) != (expected or KERAS_FILE_SHA256[name]):
        raise DatasetUnavailable(
            f"dataset {name!r}: {path} exists but its {_NAMES[algorithm]} is not the "
            "published one (truncated or a different file), and Keras would try to "
            "download it again; delete it and run "
            f"`python -c \"import keras; keras.datasets.{name}.load_data()\"` once while online, "
            "or copy a good copy there."
        )


def _files_checked(name: str, folder: Path, files) -> None:
    for file in files:
        _hash_checked(name, folder / file, *FILE_DIGESTS[f"{folder.name}/{file}"])


def resolve_keras_files(name: str, verify: bool = True) -> tuple[str, Path]:
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
        if verify:
            _files_checked(name, folder, _FASHION_FILES)
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
                if verify:
                    _files_checked(name, folder, _CIFAR_BATCHES)
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


def _load_cifar_folder(folder: Path):
    from keras.src.datasets.cifar import load_batch  # Keras' own (restricted) batch parser

    xs, ys = [], []
    for batch in _CIFAR_BATCHES[:-1]:
        x, y = load_batch(str(folder / batch))
        xs.append(x)
        ys.append(np.asarray(y))
    x_test, y_test = load_batch(str(folder / "test_batch"))
    x_train = np.concatenate(xs).transpose(0, 2, 3, 1)  # NCHW -> NHWC
    return RawData(x_train, np.concatenate(ys), x_test.transpose(0, 2, 3, 1), np.asarray(y_test))


def load_keras_dataset(name: str):
    """``keras.datasets.<name>.load_data()`` as ``RawData``, from the checked cache only."""
    checked = resolve_keras_files(name)  # fail fast, before importing TensorFlow
    import keras

    with _keras_reads_from(keras_datasets_dir(), name):
        # Importing Keras may have created $KERAS_HOME, which changes get_file's fallback;
        # resolve again so the file we checked is the file Keras opens.
        route, path = resolve_keras_files(name, verify=False)
        if (route, path) != checked:
            route, path = resolve_keras_files(name)
        if route == "cifar_folder":
            return _load_cifar_folder(path)
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    if name == "cifar10" and x_train.shape[1:] == (3, 32, 32):  # image_data_format=channels_first
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    return RawData(x_train, np.ravel(y_train), x_test, np.ravel(y_test))
