"""A benchmark with tracking off keeps each trial as it finishes (issue 29, item 8): the
journal in the output folder, read on resume; the report's files replaced whole."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from experiments.benchmark import files, report

ROOT = Path(__file__).resolve().parents[1]


def spec(key: str):
    return SimpleNamespace(key=lambda: key)


def test_the_journal_keeps_every_trial_and_reads_it_back(tmp_path):
    journal = files.Journal(tmp_path / "out", "b1")
    journal.open_parent({})
    rows = {f"k{i}": {"best_value": np.float32(0.5) + i, "steps_to_target": None,
                      "diverged": np.bool_(i == 1), "steps_run": np.int64(10),
                      "curve": {"step": [0, 5], "value": [math.nan, math.inf],
                                "seconds": [0.0, 0.1]}} for i in range(3)}
    for key, row in rows.items():
        journal.log(spec(key), row)
    files.Journal(tmp_path / "out", "other").log(spec("k9"), {"best_value": 1.0})
    back = files.Journal(tmp_path / "out", "b1").finished()
    assert list(back) == ["k0", "k1", "k2"]
    assert back["k1"]["diverged"] is True and back["k2"]["best_value"] == 2.5
    assert back["k0"]["steps_to_target"] is None and back["k0"]["steps_run"] == 10
    assert math.isnan(back["k0"]["curve"]["value"][0])
    assert back["k0"]["curve"]["value"][1] == math.inf
    assert list(files.Journal(tmp_path / "out", "other").finished()) == ["k9"]


def test_a_line_torn_by_a_kill_is_skipped_and_the_next_append_is_whole(tmp_path):
    journal = files.Journal(tmp_path, "b")
    journal.log(spec("a"), {"v": 1})
    with open(journal.path, "ab") as f:  # killed half-way through the next line
        f.write(b'{"benchmark_id": "b", "trial_key": "b", "row": {"v"')
    assert list(journal.finished()) == ["a"]
    journal.log(spec("c"), {"v": 3})
    assert journal.finished() == {"a": {"v": 1}, "c": {"v": 3}}
    assert len(journal.path.read_text().splitlines()) == 3


def test_a_file_replaced_whole_survives_a_crash_mid_write(tmp_path, monkeypatch):
    """results.csv of the last report stays whole when the next write dies half-way (a
    direct to_csv left half a table), and no temporary file is left."""
    out = tmp_path / "out"
    out.mkdir()
    good = pd.DataFrame({"a": [1, 2, 3]})
    files.write_csv(good, out / "results.csv", index=False)

    def dies_half_way(self, path, **kwargs):
        Path(path).write_text("a\n1\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", dies_half_way)
    # the table's columns are checked before anything is written; this one is not a
    # trial table, and what is tested here is the write that follows the check
    monkeypatch.setattr(report.verdicts, "check_table", lambda results: None)
    with pytest.raises(KeyboardInterrupt):
        report.write_report(pd.DataFrame({"a": [9] * 100}), [], out, exact_pairs={})
    monkeypatch.undo()
    assert pd.read_csv(out / "results.csv").equals(good)
    assert sorted(p.name for p in out.iterdir()) == ["plots", "results.csv"]
    files.write_text(out / "leaderboard.md", "board\n")
    assert (out / "leaderboard.md").read_text() == "board\n"


def lines(path: Path) -> list[dict]:
    """The journal's whole lines (not one a kill tore)."""
    out = []
    for text in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(text))
        except ValueError:
            pass
    return out


@pytest.mark.slow
def test_a_killed_benchmark_without_tracking_resumes_from_its_journal(tmp_path):
    """The real command, tracking off, SIGKILLed after three trials: the rerun skips the
    journaled trials, trains the rest once, and the table holds every trial."""
    folder = tmp_path / "workload"
    folder.mkdir()
    text = (ROOT / "conf" / "workload" / "breast_cancer_logreg.yaml").read_text()
    (folder / "breast_cancer_logreg.yaml").write_text(text)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "experiments.benchmark", "preset=smoke",
               "workloads=[breast_cancer_logreg]", f"workload_dir={folder}",
               "optimizers=[sgd,adam]", "preset.budget=0.3", "preset.tuned.trials=10",
               "preset.tuned.studies=1", "preset.at_defaults.seeds=1", "workers=1",
               "tracking.enabled=false", f"output_dir={out}", "scoring.bootstrap=20",
               "preset.stop_at_target=false", f"hydra.run.dir={tmp_path}/hydra"]
    total = 2 * (10 + 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPTLAB_PROGRESS": "0"}
    journal = out / files.JOURNAL
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(lines(journal)) < 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    kept = lines(journal)
    assert 3 <= len(kept) < total and not (out / "results.csv").exists()

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(kept)} of {total} trials already finished, skipped" in again.stderr
    keys = [e["trial_key"] for e in lines(journal)]
    assert len(keys) == total and len(set(keys)) == total  # none twice, none lost
    assert lines(journal)[:len(kept)] == kept
    results = pd.read_csv(out / "results.csv")
    assert len(results) == total
    assert not list(out.glob(".*.tmp"))
