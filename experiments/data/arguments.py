"""The loader's keyword arguments, their defaults and checks, without loading anything."""

import math
import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from experiments.core.checks import is_int, is_real, reject_unknown
from experiments.data.sources import DatasetSpec, get_spec


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
    seed: int = DatasetParams.seed,
    val_fraction: float = DatasetParams.val_fraction,
    test_fraction: float = DatasetParams.test_fraction,
    standardize: bool = DatasetParams.standardize,
    cache_dir: Any = DatasetParams.cache_dir,
    limit: Optional[int] = DatasetParams.limit,
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


