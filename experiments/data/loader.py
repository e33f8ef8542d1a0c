"""``load_dataset``: validated arguments, then the cache or a fresh build, split and scaled."""

import logging
import os
import time
from pathlib import Path
from typing import Optional

from experiments.data.arguments import DatasetParams, validate_dataset_args
from experiments.data.cache import (CACHE_FORMAT, cache_file, read_cache, write_cache,
                                    default_cache_dir)
from experiments.data.splits import Splits, assemble_splits, split_indices

log = logging.getLogger(__name__)


def load_dataset(
    name: str,
    *,
    seed: int = DatasetParams.seed,
    val_fraction: float = DatasetParams.val_fraction,
    test_fraction: float = DatasetParams.test_fraction,
    standardize: bool = DatasetParams.standardize,
    cache_dir: Optional[str | os.PathLike] = DatasetParams.cache_dir,
    limit: Optional[int] = DatasetParams.limit,
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
    path = cache_file(Path(cache_dir) if cache_dir is not None else default_cache_dir(), key)
    if path.exists():
        try:
            splits = read_cache(path, key, spec)
        except Exception as e:  # corrupt, truncated, foreign: rebuild it
            log.warning("dataset cache %s is unreadable (%s: %s); rebuilding", path,
                        type(e).__name__, e)
        else:
            splits.load_seconds = time.perf_counter() - t0
            log.info("dataset %s from cache %s in %.2fs", name, path, splits.load_seconds)
            return splits
    raw = spec.build()
    idx = split_indices(spec, raw, int(seed), float(val_fraction), float(test_fraction), limit)
    splits = assemble_splits(spec, raw, idx, bool(standardize))
    del raw
    if write_cache(path, key, splits):
        splits.cache_path = str(path)
    splits.load_seconds = time.perf_counter() - t0
    log.info("dataset %s built in %.2fs (%s)", name, splits.load_seconds, splits.sizes())
    return splits
