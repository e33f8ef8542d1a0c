"""Seeded, stratified train/val/test splits and per-feature standardisation."""

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from experiments.data.raw import RawData
from experiments.data.sources import DatasetSpec


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


def split_indices(
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


def assemble_splits(
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


