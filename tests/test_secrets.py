"""Secrets never leave the command line (issue 29, item 6): URL credentials are found by
parsing, whatever the password holds, and masked in what MLflow stores, what the console
shows and what Hydra writes under outputs/ and multirun/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.core import tracking

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("raw, safe", [
    ("postgresql+psycopg2://mlflow:pa/ss@db/mlflow", "postgresql+psycopg2://***@db/mlflow"),
    ("postgresql://mlflow:p@ss@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
    ("mysql://u:a?b#c@db/x?ssl=1", "mysql://***@db/x?ssl=1"),
    ("https://TOKEN@github.com/repo", "https://***@github.com/repo"),
    ("https://host/x?token=abc&y=1", "https://host/x?token=***&y=1"),
    ("https://store/blob?sv=1&sig=abc%2Fdef", "https://store/blob?sv=1&sig=***"),
    ("https://github.com/@someone/repo", "https://github.com/@someone/repo"),  # not a login
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("+tracking.tags.db=postgresql\\://u\\:pa/ss@db/x",  # as Hydra escapes a sweep's
     "+tracking.tags.db=postgresql\\://***@db/x"),
    ("from sqlite:///mlruns/mlflow.db to postgresql://u:pw@h/d, password=x y",
     "from sqlite:///mlruns/mlflow.db to postgresql://***@h/d, password=*** y"),
])
def test_redact_by_parsing(raw, safe):
    assert tracking.redact(raw) == safe


def test_the_stopped_line_masks_secrets():
    """The line that tells how to continue a stopped training (it lands in SLURM logs)."""
    from types import SimpleNamespace

    from experiments.train.__main__ import stopped_message

    err = SimpleNamespace(signal_name="SIGTERM", step=12, run_id="abc")
    line = stopped_message(err, ["tracking.uri=postgresql://mlflow:pa/ss@db/mlflow",
                                 "+tracking.tags.api_token=s3cr3t", "trainer.epochs=3",
                                 "trainer.resume=true"])
    assert "pa/ss" not in line and "s3cr3t" not in line
    assert ("python -m experiments.train tracking.uri=postgresql://***@db/mlflow "
            "+tracking.tags.api_token=*** trainer.epochs=3 trainer.resume=abc") in line
    assert "shown as *** are secrets" in line
    plain = stopped_message(err, ["trainer.epochs=3"])
    assert plain.endswith("trainer.epochs=3 trainer.resume=abc")


def test_hydra_log_records_are_redacted(caplog):
    """Hydra's launcher logs each job's overrides (escaped, as above) on the console."""
    import logging

    with caplog.at_level(logging.INFO):
        logging.getLogger("hydra._internal.core_plugins.basic_launcher").info(
            "\t#%d : %s", 0, "tracking.uri=postgresql\\://mlflow\\:pa/ss@db/mlflow")
    assert caplog.records[-1].getMessage() == "\t#0 : tracking.uri=postgresql\\://***@db/mlflow"


SECRETS = ["+tracking.tags.source=https://alice:pa/ss@example.org/repo",
           "+tracking.tags.db=postgresql+psycopg2://mlflow:p@ss@db/mlflow",
           "+tracking.tags.api_token=s3cr3t-token"]
LEAKS = (b"pa/ss", b"p@ss", b"s3cr3t")


def _everything_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_no_secret_in_params_tags_artifacts_console_or_outputs(tmp_path):
    """A real training and a real one-job sweep: every byte of the tracking store (params,
    tags, artifacts), of the console and of Hydra's outputs/ and multirun/ folders."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OPTLAB_PROGRESS="0")
    common = ["trainer.max_steps=2", "trainer.epochs=1", "tracking.log_plots=false",
              f"tracking.uri={uri}", *SECRETS]
    console = b""
    for extra in ([f"hydra.run.dir={tmp_path / 'outputs'}"],
                  ["-m", f"hydra.sweep.dir={tmp_path / 'multirun'}", "trainer.seed=1"]):
        result = subprocess.run([sys.executable, "-m", "experiments.train", *extra, *common],
                                cwd=ROOT, env=env, capture_output=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        console += result.stdout + result.stderr
    files = _everything_under(tmp_path)
    assert any(name.endswith(".hydra/overrides.yaml") for name in files)
    assert any(name.endswith("multirun.yaml") for name in files)
    assert any("artifacts" in name and name.endswith("config.yaml") for name in files)
    assert b"***@example.org/repo" in files["outputs/.hydra/overrides.yaml"]
    for leak in LEAKS:
        assert leak not in console
        found = [name for name, data in files.items() if leak in data]
        assert not found, f"{leak!r} in {found}"
    from mlflow.tracking import MlflowClient

    (run, _) = MlflowClient(tracking_uri=uri).search_runs(
        [MlflowClient(tracking_uri=uri).get_experiment_by_name("optimizer-lab").experiment_id])
    assert run.data.tags["db"] == "postgresql+psycopg2://***@db/mlflow"
    assert run.data.params["tracking.tags.api_token"] == "***"
