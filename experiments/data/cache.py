"""The ``.npz`` cache of finished splits, keyed by the dataset and all arguments."""

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from experiments.data.sources import DatasetSpec
from experiments.data.splits import Splits

log = logging.getLogger(__name__)

#: Bumped whenever the processing changes, so stale cache files are not reused.
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "optimizer-lab" / "datasets"


_ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def cache_file(cache_dir: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir / f"{key['name']}-{digest}.npz"


def read_cache(path: Path, key: dict[str, Any], spec: DatasetSpec) -> Splits:
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


def write_cache(path: Path, key: dict[str, Any], splits: Splits) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(  # pixels compress 3-5x; reading costs little more
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


