"""A dataset's splits as MLflow dataset inputs: one per split, with a digest of exactly
the examples a run saw (``split_digest``)."""

from __future__ import annotations

from typing import Any, Mapping

from experiments.data.sources import get_spec


# The contexts of a run's dataset inputs, one per split (``Splits.indices`` keys).
SPLIT_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}
DIGEST_CHARS = 16  # MLflow's store keeps up to 36
SOURCE_IGNORES = ("name", "cache_dir")  # loader arguments that do not change the data


def split_digest(splits, split: str) -> str:
    """SHA-256 (first ``DIGEST_CHARS`` hex digits) of one split's arrays and of the rows
    of the source it came from: equal exactly when two runs saw the same examples, values
    (after scaling and standardisation) and labels, in the same order."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    parts = (getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}"),
             np.asarray(splits.indices.get(split, ()), dtype=np.int64))
    for array in parts:
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(array.data)
    return h.hexdigest()[:DIGEST_CHARS]


def dataset_inputs(splits, arguments: Mapping[str, Any]) -> list[tuple[Any, str]]:
    """The MLflow dataset inputs of a training on ``splits``: one ``mlflow.data`` numpy
    dataset per split, named after the dataset, with ``split_digest`` as its digest and
    as its source the package it was built from and the loader's ``arguments``
    (seed, fractions, standardisation, limit; not the cache folder).
    ``experiments.core.tracking.RunLogger.log_datasets`` logs them."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.numpy_dataset import from_numpy

    spec = get_spec(splits.name)
    source = CodeDatasetSource({"dataset": splits.name, "loader": spec.source,
                                **{str(k): str(v) for k, v in arguments.items()
                                   if k not in SOURCE_IGNORES}})
    return [(from_numpy(getattr(splits, f"x_{split}"), source=source,
                        targets=getattr(splits, f"y_{split}"), name=splits.name,
                        digest=split_digest(splits, split)), context)
            for split, context in SPLIT_CONTEXTS.items()]
