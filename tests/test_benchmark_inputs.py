"""``python -m experiments.benchmark``: the inputs that passed the early checks and failed
later (issue 29, item 7), refused with one line and exit code 2 before TensorFlow loads,
with no run and no folder left behind; Hydra's folders unique per command (item 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from experiments import benchmark

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def cfg(*overrides, hydra=False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("benchmark", overrides=list(overrides), return_hydra_config=hydra)


def workload_copy(folder: Path, name="breast_cancer_logreg", target=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = (CONF / "workload" / "breast_cancer_logreg.yaml").read_text()
    if target is not None:
        text = "\n".join(f"target: {target}" if line.startswith("target:") else line
                         for line in text.splitlines()) + "\n"
    (folder / f"{name}.yaml").write_text(text)
    return folder


def cases(tmp: Path) -> list[tuple[list[str], str]]:
    """(overrides, the refusal's line) for every input of item 7 (benchmark part)."""
    # ../../../evil from tmp/a/b/c/ is tmp/evil.yaml: a valid workload outside the folder
    workload_copy(tmp, "evil")
    deep = tmp / "a" / "b" / "c"
    workload_copy(deep)
    nan = workload_copy(tmp / "nan", target=".nan")
    huge = workload_copy(tmp / "huge")
    text = (huge / "breast_cancer_logreg.yaml").read_text()
    (huge / "breast_cancer_logreg.yaml").write_text(text.replace("steps: 390",
                                                                 "steps: 100000000000"))
    return [
        ([f"workload_dir={deep}", "workloads=[../../../evil]"],
         "workload '../../../evil' does not exist: choose from breast_cancer_logreg"),
        ([f"workload_dir={deep}", "workloads=[../../../evil]", "mode=calibrate"],
         "workload '../../../evil' does not exist: choose from breast_cancer_logreg"),
        ([f"workload_dir={nan}", "workloads=[breast_cancer_logreg]"],
         "breast_cancer_logreg.yaml: target=nan must be a finite number"),
        ([f"workload_dir={huge}", "workloads=[breast_cancer_logreg]"],
         "breast_cancer_logreg.yaml: steps=100000000000 must be an integer in [1, 10000000]"),
        (["output_dir=/proc/nope"], "output_dir=/proc/nope cannot be created:"),
        (["preset.tuned.studies=100000000000000000000"],
         "preset.tuned.studies=100000000000000000000 must be an integer in [1, 1000]"),
        (["preset.tuned.trials=100000000"],
         "preset.tuned.trials=100000000 must be an integer in [1, 10000]"),
        (["preset.at_defaults.seeds=1000000"],
         "preset.at_defaults.seeds=1000000 must be an integer in [1, 1000]"),
        (["workers=1000000"], "workers=1000000 must be an integer in [1, 512]"),
        (["eval_every=100000000000"], "eval_every=100000000000 must be an integer in [1, "),
        (["scoring.bootstrap=10000000000"], "scoring.bootstrap=10000000000 must be an "
                                            "integer in [1, 1000000]"),
        (["optimizers=all", "preset.tuned.trials=10000", "preset.tuned.studies=1000"],
         "trials each is over 1000000 trials"),
        (["tracking.experiment_name=''"], "tracking.experiment_name='' is not valid"),
        ([f"tracking.experiment_name={'x' * 501}"], "is not valid: give a name of 1 to 500"),
    ]


def test_each_input_is_refused_in_one_line(tmp_path):
    for overrides, message in cases(tmp_path):
        with pytest.raises(benchmark.BenchmarkError) as err:
            benchmark.settings(cfg(*overrides, "tracking.enabled=false"))
        assert message in str(err.value), (overrides, str(err.value))
        assert "\n" not in str(err.value)
    assert not Path("/proc/nope").exists()


def test_an_output_folder_that_is_a_file_or_unwritable_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(benchmark.BenchmarkError, match="is a file"):
        benchmark.settings(cfg(f"output_dir={tmp_path}/file/out", "tracking.enabled=false"))
    expected = {"file"}
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        expected.add("locked")
        with pytest.raises(benchmark.BenchmarkError, match="cannot be created"):
            benchmark.settings(cfg(f"output_dir={locked}/out", "tracking.enabled=false"))
    s = benchmark.settings(cfg(f"output_dir={tmp_path}/new/out", "tracking.enabled=false"))
    assert s.output_dir == tmp_path / "new" / "out"
    # checked, not created: nothing left behind
    assert {p.name for p in tmp_path.iterdir()} == expected


def test_calibrate_writes_only_inside_the_workload_folder(tmp_path):
    """The refused name never reaches write_target; an accepted one is a file of the
    folder itself."""
    folder = workload_copy(tmp_path / "w")
    s = benchmark.settings(cfg(f"workload_dir={folder}", "workloads=[breast_cancer_logreg]",
                               "mode=calibrate", "tracking.enabled=false"))
    (w,) = s.workloads
    assert w.path.parent == folder and w.path.name == "breast_cancer_logreg.yaml"
    for name in ("../w/breast_cancer_logreg", "./breast_cancer_logreg",
                 str(folder / "breast_cancer_logreg"), 3):
        with pytest.raises(benchmark.BenchmarkError, match="does not exist"):
            benchmark.load_workload(name, folder)


def test_calibrate_writes_a_finite_target_whole_or_nothing(tmp_path):
    folder = workload_copy(tmp_path / "w")
    w = benchmark.load_workload("breast_cancer_logreg", folder)
    before = w.path.read_text()
    with pytest.raises(benchmark.BenchmarkError, match="found no finite val_loss"):
        benchmark.write_target(w, float("nan"), "all diverged")
    assert w.path.read_text() == before
    benchmark.write_target(w, 0.125, "a test")
    again = benchmark.load_workload("breast_cancer_logreg", folder)
    assert again.target == 0.125 and again.target_provenance == "a test"
    assert [p.name for p in folder.iterdir()] == ["breast_cancer_logreg.yaml"]


@pytest.mark.slow
def test_the_command_refuses_before_tensorflow_with_nothing_left_behind(tmp_path):
    """Through the real command: one line, exit 2, no TensorFlow, no MLflow, no run, no
    folder (the store's folder and the output folder are not created)."""
    store = tmp_path / "store"
    code = ("import sys, runpy\nsys.argv = ['benchmark'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('experiments.benchmark', run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    assert 'tensorflow' not in sys.modules and 'mlflow' not in sys.modules\n"
            "    raise\n")
    inputs = tmp_path / "inputs"
    for overrides, message in cases(inputs):
        before = sorted(p for p in tmp_path.rglob("*"))
        out = subprocess.run(
            [sys.executable, "-c", code, *overrides, f"tracking.uri=sqlite:///{store}/m.db",
             f"hydra.run.dir={tmp_path}/hydra"] +
            ([] if any(o.startswith("output_dir") for o in overrides)
             else [f"output_dir={tmp_path}/out"]),
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 2, (overrides, out.stderr)
        assert out.stderr.count("\n") == 1 and message in out.stderr, (overrides, out.stderr)
        assert sorted(p for p in tmp_path.rglob("*")) == before, overrides
    assert not store.exists() and not (tmp_path / "out").exists()
    assert not (tmp_path / "hydra").exists()


def test_hydra_folders_of_two_commands_in_the_same_second_differ():
    """Item 9: the run and sweep folders carry microseconds."""
    dirs = set()
    for _ in range(3):
        h = cfg("tracking.enabled=false", hydra=True).hydra
        dirs.add((h.run.dir, h.sweep.dir))
    assert len(dirs) == 3
    run, sweep = dirs.pop()
    assert run.startswith("outputs/benchmark/hydra/") and sweep.startswith("multirun/benchmark/")
