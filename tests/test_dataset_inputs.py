"""Every training run records its data as MLflow dataset inputs: one per split, named after
the dataset, with a digest of the split's arrays and of its source rows, and the source.
Read back from the store: two runs on the same data have equal digests, another split
(``dataset.seed``) gives other digests, and MLflow's search finds runs by digest."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments.train.config import register_schemas as register_train_schemas
from experiments.train.config import validate
from experiments.data import inputs, load_dataset

register_train_schemas()

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.epochs=1", "trainer.max_steps=2", "trainer.batch_size=32",
        "tracking.log_model=false", "tracking.log_plots=false", "trainer.progress=false"]


def _run(uri, *overrides):
    from experiments.train.pipeline import run

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, f"tracking.uri={uri}", *overrides])
    validate(cfg)
    return run(cfg, out=io.StringIO())["run_id"]


def _inputs(client, run_id) -> dict[str, object]:
    """context -> the dataset of that context, as the store gives it back."""
    out = {}
    for item in client.get_run(run_id).inputs.dataset_inputs:
        context = {t.key: t.value for t in item.tags}["mlflow.data.context"]
        out[context] = item.dataset
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"
    return uri, {"adam": _run(uri, "optimizer=adam"),
                 "sgd": _run(uri, "optimizer=sgd"),
                 "other_split": _run(uri, "optimizer=adam", "dataset.seed=1")}


@pytest.mark.slow
def test_runs_on_the_same_data_have_equal_digests_read_back(runs):
    from mlflow.tracking import MlflowClient

    uri, ids = runs
    client = MlflowClient(tracking_uri=uri)
    adam, sgd, other = (_inputs(client, ids[k]) for k in ("adam", "sgd", "other_split"))
    assert set(adam) == {"training", "validation", "test"}
    splits = load_dataset("digits", seed=0)
    for split, context in inputs.SPLIT_CONTEXTS.items():
        assert adam[context].name == "digits"
        assert adam[context].digest == sgd[context].digest
        assert adam[context].digest == inputs.split_digest(splits, split)
        source = json.loads(adam[context].source)["tags"]
        assert source["loader"].startswith("sklearn.datasets.load_digits")
        assert (source["seed"], source["val_fraction"], source["standardize"]) == \
            ("0", "0.1", "True")
        assert "cache_dir" not in source
        profile = json.loads(adam[context].profile)
        assert profile["features_shape"][0] == len(getattr(splits, f"y_{split}"))
    # another seed of the split: other rows in every split, other digests
    for context in ("training", "validation", "test"):
        assert other[context].digest != adam[context].digest
    found = client.search_runs(
        [client.get_experiment_by_name("optimizer-lab").experiment_id],
        f"datasets.digest = '{adam['training'].digest}'")
    assert {r.info.run_id for r in found} == {ids["adam"], ids["sgd"]}


def test_the_digest_sees_the_rows_and_the_values():
    splits = load_dataset("digits", seed=0)
    base = inputs.split_digest(splits, "train")
    assert inputs.split_digest(load_dataset("digits", seed=0), "train") == base
    assert inputs.split_digest(load_dataset("digits", seed=0, standardize=False),
                                 "train") != base  # the same rows, other values
    swapped = dict(splits.indices)
    swapped["train"] = splits.indices["train"].copy()
    swapped["train"][[0, 1]] = swapped["train"][[1, 0]]
    splits.indices = swapped  # the same arrays said to come from other rows
    assert inputs.split_digest(splits, "train") != base
    assert len(base) == inputs.DIGEST_CHARS and int(base, 16) >= 0
    assert np.asarray(splits.indices["train"]).dtype.kind == "i"
