"""``experiments.compare``: the table's numbers from runs with known metrics, the plots,
the comparison run, and the messages for empty selections and missing metrics."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import compare

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "cmp-test"
SWEEP = "multirun/2030-01-01/00-00-00"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def expected(optimizer: str, seed: int) -> dict:
    """The metric histories of one fake run: ``metric -> [(step, value), ...]``.

    Numbers are chosen so that every summary is easy to compute by hand:
    ``val_loss`` falls to ``0.5 + 0.1*seed + bias`` at epoch 2 and rises to ``0.6 + ...``
    at epoch 3 (best ≠ final), ``loss`` crosses 1.0 at step ``3 + seed + shift``.
    """
    bias = {"adam": 0.0, "keras_adam": 0.02, "sgd": 0.3}[optimizer]
    shift = {"adam": 0, "keras_adam": 1, "sgd": 4}[optimizer]
    cross = 3 + seed + shift
    steps = range(1, 13)
    h = {
        "loss": [(s, 2.0 if s < cross else 0.9) for s in steps],
        "grad_norm": [(s, 1.0 / s) for s in steps],
        "epoch_loss": [(4, 1.5), (8, 1.0), (12, 0.8)],
        "val_loss": [(4, 1.0), (8, 0.5 + 0.1 * seed + bias), (12, 0.6 + 0.1 * seed + bias)],
        "val_accuracy": [(4, 0.5), (8, 0.9 - 0.01 * seed), (12, 0.8 - 0.01 * seed)],
        "epoch_time_s": [(4, 9.0), (8, 1.0 + seed), (12, 1.0 + seed)],
        "test_accuracy": [(12, 0.7 + 0.1 * seed - bias)],
    }
    if optimizer != "sgd":
        h["effective_lr/mean"] = [(s, 1e-3 * s) for s in steps]
    return h


def make_run(c, exp_id, optimizer, seed, *, sweep=SWEEP, drop=(), status="FINISHED",
             tags=None, params=None):
    from mlflow.entities import Metric, Param

    run = c.create_run(exp_id, run_name=f"{optimizer}-s{seed}", tags={
        "optimizer": optimizer, "optimizer_rule": optimizer.removeprefix("keras_"),
        "implementation": "keras" if optimizer.startswith("keras_") else "custom",
        "dataset": "digits", "model": "mlp", "seed": str(seed), "sweep": sweep, **(tags or {})})
    metrics = [Metric(k, v, 1000 + s, s) for k, points in expected(optimizer, seed).items()
               if k not in drop for s, v in points]
    c.log_batch(run.info.run_id, metrics=metrics, params=[
        Param(k, str(v)) for k, v in {"trainer.seed": seed, "optimizer.learning_rate": 0.01,
                                      **(params or {})}.items()])
    c.set_terminated(run.info.run_id, status)
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('cmp') / 'mlflow.db'}"
    c = client(uri)
    exp = c.create_experiment(EXPERIMENT,
                              artifact_location=(Path(uri[10:]).parent / "art").as_uri())
    for seed in (0, 1, 2):
        make_run(c, exp, "adam", seed)
    for seed in (0, 1):
        make_run(c, exp, "keras_adam", seed)
    make_run(c, exp, "sgd", 0)
    make_run(c, exp, "sgd", 1, drop=("val_accuracy",))   # a run without one metric
    make_run(c, exp, "sgd", 2, drop=("val_loss", "val_accuracy", "test_accuracy",
                                     "epoch_time_s"), status="FAILED")
    make_run(c, exp, "adam", 7, sweep="multirun/other")   # another sweep
    make_run(c, exp, "adam", 8, tags={compare.RUN_TYPE_TAG: compare.COMPARISON})
    return uri


def run_compare(store, tmp_path, **kwargs):
    kwargs = {"smooth": 1, "target_loss": 1.0, "log_run": False, "plots": False, **kwargs}
    return compare.compare(compare.Selection(EXPERIMENT, sweep=kwargs.pop("sweep", SWEEP),
                                             optimizers=kwargs.pop("optimizers", ())),
                           uri=store, out_dir=tmp_path / "out", **kwargs)


def by_label(result):
    return {r.label["optimizer"]: r for r in result.rows}


@pytest.mark.slow
def test_table_numbers_match_the_logged_metrics(store, tmp_path):
    result = run_compare(store, tmp_path)
    rows = by_label(result)
    assert list(rows) == ["sgd", "adam", "keras_adam", "adam − keras_adam"]

    adam = rows["adam"]
    assert (adam.runs, adam.unfinished) == (3, 0)    # seed 7 (other sweep), 8 (comparison) out
    st = adam.stats
    assert st["final_val_loss"].mean == pytest.approx(0.7)
    assert st["final_val_loss"].std == pytest.approx(0.1)
    assert st["final_val_loss"].n == 3
    assert st["best_val_loss"].mean == pytest.approx(0.6)
    assert st["final_val_accuracy"].mean == pytest.approx(0.79)
    assert st["best_val_accuracy"].mean == pytest.approx(0.89)
    assert st["best_val_accuracy"].std == pytest.approx(0.01)
    assert st["test_accuracy"].mean == pytest.approx(0.8)
    assert st["steps_to_target"].mean == pytest.approx(4.0)      # crossings at 3, 4, 5
    assert st["steps_to_target"].std == pytest.approx(1.0)
    assert adam.reached == "3/3"
    assert st["epoch_time_s"].mean == pytest.approx(2.0)         # medians 1, 2, 3

    keras = rows["keras_adam"].stats
    assert keras["final_val_loss"].mean == pytest.approx(0.67)
    assert keras["steps_to_target"].mean == pytest.approx(4.5)

    diff = rows["adam − keras_adam"]
    assert diff.kind == "difference" and diff.runs == 2            # seeds 0 and 1 in both
    assert diff.stats["final_val_loss"].mean == pytest.approx(0.7 - 0.67)
    # same-seed differences are all -0.02: no spread
    assert diff.stats["final_val_loss"].std == pytest.approx(0.0, abs=1e-12)
    assert diff.stats["steps_to_target"].mean == pytest.approx(-0.5)
    assert diff.stats["steps_to_target"].std == pytest.approx(0.0)

    sgd = rows["sgd"]
    assert (sgd.runs, sgd.unfinished) == (2, 1)
    assert sgd.stats["final_val_loss"].mean == pytest.approx(0.95)
    assert sgd.stats["final_val_accuracy"].n == 1                 # one run lacks it
    assert sgd.stats["final_val_accuracy"].mean == pytest.approx(0.8)
    assert math.isnan(sgd.stats["final_val_accuracy"].std)


def test_files_are_written_and_agree(store, tmp_path):
    result = run_compare(store, tmp_path)
    with open(result.csv_path) as f:
        rows = {r["optimizer"]: r for r in csv.DictReader(f)}
    assert float(rows["adam"]["final_val_loss_mean"]) == pytest.approx(0.7)
    assert float(rows["adam"]["final_val_loss_std"]) == pytest.approx(0.1)
    assert rows["adam"]["final_val_loss_n"] == "3"
    assert rows["adam − keras_adam"]["row"] == "difference"
    assert rows["sgd"]["not_finished"] == "1"
    md = result.markdown_path.read_text()
    assert "| adam | 3 | 0 | 0.7000 ± 0.1000 |" in md
    assert "| sgd | 2 | 1 |" in md and "0.8000 (n=1)" in md
    assert "adam − keras_adam" in result.table and "0.0300 ± 0.0000" in result.table


@pytest.mark.slow
def test_plots_are_valid_pngs(store, tmp_path):
    from PIL import Image

    result = run_compare(store, tmp_path, band="std", plots=True)
    names = sorted(p.name for p in result.plots)
    assert names == ["effective_lr.png", "grad_norm.png", "loss_epoch.png", "loss_step.png"]
    for path in result.plots:
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.size[0] >= 600 and im.size[1] >= 300


@pytest.mark.slow
def test_comparison_run_is_logged_and_never_selected(store, tmp_path):
    result = run_compare(store, tmp_path, log_run=True, plots=True)
    c = client(store)
    run = c.get_run(result.run_id)
    assert run.data.tags[compare.RUN_TYPE_TAG] == compare.COMPARISON
    assert run.data.params["target_loss"] == "1.0"
    assert "adam − keras_adam" in run.data.tags["mlflow.note.content"]
    top = {a.path for a in c.list_artifacts(result.run_id)}
    assert {"comparison.csv", "comparison.md", "plots"} <= top
    plots = {a.path for a in c.list_artifacts(result.run_id, "plots")}
    assert "plots/loss_step.png" in plots
    local = c.download_artifacts(result.run_id, "plots/loss_step.png", str(tmp_path))
    assert Path(local).read_bytes()[:8] == PNG_MAGIC
    # the comparison run carries the sweep's selection but is never compared itself
    again = run_compare(store, tmp_path)
    assert by_label(again)["adam"].runs == 3


def test_selection_by_optimizers_latest_sweep_and_filter(store, tmp_path):
    result = run_compare(store, tmp_path, optimizers=("adam", "keras_adam"))
    assert list(by_label(result)) == ["adam", "keras_adam", "adam − keras_adam"]
    # newest sweep: 'multirun/other' was logged after SWEEP
    latest = run_compare(store, tmp_path, sweep="latest")
    assert [(r.label["optimizer"], r.runs) for r in latest.rows] == [("adam", 1)]
    sel = compare.Selection(EXPERIMENT, filter="tags.seed = '1'")
    rows = by_label(compare.compare(sel, uri=store, out_dir=tmp_path, log_run=False,
                                    plots=False))
    assert {k: r.runs for k, r in rows.items() if r.kind == "optimizer"} == {
        "sgd": 1, "adam": 1, "keras_adam": 1}
    # a trailing slash or an absolute spelling of the sweep folder finds the same runs
    assert compare.sweep_spellings(SWEEP + "/")[0] == SWEEP
    assert SWEEP in compare.sweep_spellings(str(Path.cwd() / SWEEP))


@pytest.mark.slow
def test_missing_metrics_are_reported(store, tmp_path):
    notes = run_compare(store, tmp_path).notes
    assert any(n.startswith("metric 'val_accuracy' is missing in 1 of") and "sgd-s1" in n
               and "val acc (final)" in n for n in notes), notes
    only_sgd = run_compare(store, tmp_path, optimizers=("sgd",), plots=True)
    assert "no run has 'effective_lr/mean': effective_lr.png not drawn" in only_sgd.notes
    assert len(only_sgd.plots) == 3


def test_mixed_configurations_are_pointed_out(store, tmp_path):
    c = client(store)
    exp = c.create_experiment("cmp-mixed")
    make_run(c, exp, "adam", 0)
    make_run(c, exp, "adam", 1, params={"optimizer.learning_rate": 0.1})
    sel = compare.Selection("cmp-mixed")
    result = compare.compare(sel, uri=store, out_dir=tmp_path, log_run=False, plots=False)
    assert any("differ in optimizer.learning_rate (0.01, 0.1)" in n
               and "--group-by optimizer.learning_rate" in n for n in result.notes)
    split = compare.compare(sel, uri=store, out_dir=tmp_path, log_run=False, plots=False,
                            group_by=["optimizer.learning_rate"])
    assert [(r.label["optimizer.learning_rate"], r.runs) for r in split.rows] == [
        ("0.01", 1), ("0.1", 1)]


@pytest.mark.parametrize("argv, fragment", [
    (["--dataset", "imagenet"], "no runs match experiment 'cmp-test', sweep"),
    (["--experiment", "nope"], "no experiment named 'nope' in the store; it has: "),
    (["--sweep", "/nonexistent"], "no runs match experiment 'cmp-test', sweep '/nonexistent'"),
    (["--filter", "metrics.loss <<< 1"], "invalid filter 'metrics.loss <<< 1'"),
    (["--smooth", "0"], "--smooth must be at least 1"),
    (["--band", "iqr"], "argument --band: invalid choice"),
])
def test_bad_input_is_refused_in_one_line(store, tmp_path, capsys, argv, fragment):
    """Every mistake, an empty selection included, is refused: exit code 2 (README, "Exit
    codes"), one line, nothing written and no comparison run logged."""
    out = tmp_path / "out"
    args = ["--experiment", EXPERIMENT, "--sweep", SWEEP, "--uri", store, "--out", str(out),
            *argv]
    runs_before = _comparison_runs(store)
    with pytest.raises(SystemExit) as info:
        compare.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and fragment in err[0], err
    assert not out.exists() and _comparison_runs(store) == runs_before


def _comparison_runs(store) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    ids = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(ids, f"tags.{compare.RUN_TYPE_TAG} = '{compare.COMPARISON}'"))


def test_main_prints_table_notes_and_where_things_went(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    code = compare.main(["--experiment", EXPERIMENT, "--sweep", SWEEP, "--out", str(tmp_path),
                         "--target-loss", "1", "--smooth", "1", "--no-plots"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "adam − keras_adam" in out and "steps to loss≤1" in out
    assert f"Wrote {tmp_path / 'comparison.csv'}" in out and "Logged comparison run" in out
    assert "Note: metric 'val_accuracy' is missing" in err


@pytest.mark.slow
def test_command_line_error_has_no_traceback(store):
    env = dict(os.environ, MLFLOW_TRACKING_URI=store)
    empty = subprocess.run([sys.executable, "-m", "experiments.compare", "--experiment",
                            EXPERIMENT, "--optimizers", "lion"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2
    assert empty.stderr.strip() == f"Error: no runs match experiment '{EXPERIMENT}', " \
                                   "optimizers lion"
    assert "Traceback" not in empty.stdout + empty.stderr
