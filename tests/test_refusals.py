"""Every refused input of every command: exit code 2, one line naming the value, no
traceback, no tracking store, and neither TensorFlow nor MLflow needed.

All cases run in one child process in which ``import tensorflow`` fails, each through the
command's real ``__main__`` (``runpy``), so a refusal that came only after TensorFlow was
imported fails here. The CPU time of each refusal is measured (the wall-clock time on a
shared machine says more about the other processes); ``python tests/test_refusals.py``
prints the table with wall-clock times of whole processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TRAIN = [
    # keys the schema does not have, added with + or ++ (Hydra itself accepts them)
    (["+trainer.nope=1"], "trainer.nope is not a key of trainer"),
    (["++trainer.epoch=50"], "(did you mean trainer.epochs?)"),
    (["optimizer=momentum", "+optimizer.momentun=0.5"], "(did you mean optimizer.momentum?)"),
    (["+optimizer.lr=0.3"], "optimizer.lr is not a key of optimizer"),
    (["+foo=1"], "foo is not a key of"),
    (["optimizer.nonsense=1"], "optimizer.nonsense is not a key of optimizer"),
    # values
    (["trainer.seed=-1"], "trainer.seed=-1 is out of range: valid values are in [0, 4294967295]"),
    (["trainer.seed=4294967296"], "trainer.seed=4294967296 is out of range"),
    (["trainer.epochs=0"], "trainer.epochs=0 is out of range"),
    (["optimizer.learning_rate=-0.1"], "optimizer.learning_rate=-0.1 is out of range"),
    (["optimizer=keras_adam", "optimizer.bias_correction=false"], "no Keras counterpart"),
    (["trainer.strategy=mirrored", "trainer.jit_compile=true"], "trainer.jit_compile=true"),
    (["schedule=step", "schedule.factors=[1,0.1]"], "schedule.factors=[1.0, 0.1] must have "
                                                    "one value more than"),
    (["schedule=cosine", "schedule.alpha=2"], "schedule.alpha=2.0 is out of range"),
    (["schedule=warmup", "schedule.warmup_steps=0"], "schedule.warmup_steps=0 is out of range"),
    (["trainer.curvature_operator=fisher"], "trainer.curvature_operator='fisher' is not "
                                            "valid: choose one of hessian, ggn"),
    (["+schedule.decay_rate=0.5"], "schedule.decay_rate is not a key of schedule"),
    (["schedule=linear"], "schedule=linear is not an option: choose one of constant, cosine"),
    # Hydra's own refusals, in one line
    (["optimizer=adamax"], "optimizer=adamax is not an option: choose one of adagrad, adam"),
    (["dataset=imagenet"], "dataset=imagenet is not an option: choose one of"),
    (["+experiment=nope"], "experiment=nope is not an option: choose one of"),
    (["hydra/launcher=jobl"], "hydra/launcher=jobl is not an option: choose one of basic"),
    (["trainer.epochs=ten"], "trainer.epochs=ten: Value 'ten' of type 'str' could not be "
                             "converted to Integer"),
    (["optimizer.learning_rate=null"], "is not Optional"),
    (["~trainer.epochs"], "does not support deletion"),
    (["trainer.epochs=[1"], "cannot read the override 'trainer.epochs=[1'"),
    (["optimizer=adam,sgd"], "is a sweep: add -m (--multirun)"),
    (["--foo"], "Error: unrecognized arguments: --foo"),
    # every job of a sweep, the sweeper's search space included
    (["-m", "optimizer=adam,adamax"], "optimizer=adamax is not an option"),
    (["-m", "optimizer=momentum", "optimizer.momentum=0.5,1.5"],
     "optimizer.momentum=1.5 is out of range"),
    (["-m", "hparams_search=adam_optuna", "optimizer.beta_1=interval(0.5,1.0)"],
     "optimizer.beta_1=1.0 is out of range"),
    # what the store or the disk would refuse later
    (["trainer.resume=true"], "trainer.resume=true: no interrupted or crashed run of this "
                              "config has a checkpoint"),
    (["trainer.resume=0123abcd"], "trainer.resume=0123abcd: no checkpoint of a run with "
                                  "that id"),
    (["trainer.resume=true", "tracking=off"], "trainer.resume needs tracking"),
    (["dataset=mnist"], "Error: dataset 'mnist' is not available offline"),
    (["hydra.run.dir=/proc/no-folder"], "hydra.run.dir=/proc/no-folder cannot be created"),
    (["-m", "hydra.sweep.dir=/proc/no-folder"], "hydra.sweep.dir=/proc/no-folder cannot be"),
    # what passed every early check before (issue 29, item 7): one range check for all
    (["optimizer.weight_decay=inf"], "optimizer.weight_decay=inf is not a finite number"),
    (["optimizer.global_clipnorm=inf"], "optimizer.global_clipnorm=inf is not a finite"),
    (["tracking.experiment_name="], "tracking.experiment_name='' is not valid"),
    ([f"tracking.experiment_name={'x' * 501}"], "is 501 characters long: MLflow takes at "
                                               "most 500"),
    (["model.width=1000000000"], "model.width=1000000000 is out of range: valid values are "
                                 "at most 16384"),
    (["model.depth=100000"], "model.depth=100000 is out of range"),
    (["trainer.curvature_every_n_steps=1", "trainer.curvature_iterations=100000000"],
     "trainer.curvature_iterations=100000000 is out of range"),
    (["trainer.logical_cpus=1000000"], "trainer.logical_cpus=1000000 is out of range"),
    (["schedule=warmup", "schedule.warmup_steps=1e20"], "schedule.warmup_steps=1e20"),
    (["schedule=warmup", "schedule.warmup_steps=100000000000000000000"],
     "schedule.warmup_steps=100000000000000000000 is out of range"),
    (["trainer.curvature_every_n_steps=100000000000000000000"],
     "trainer.curvature_every_n_steps"),
    (["-m", "trainer.seed=range(0,100000)"], "a sweep of 100000 jobs (trainer.seed: 100000 "
                                             "values) is more than 10000"),
    (["--config-dir", "/proc/no-folder"], "--config-dir=/proc/no-folder: no such folder"),
    (["-cp", "/proc/no-folder"], "--config-path=/proc/no-folder: no such folder"),
    (["-cp", str(ROOT / "conf"), "trainer.epochs=0"], "trainer.epochs=0 is out of range"),
    (["--config-dir", str(ROOT / "conf" / "optimizer"), "optimizer.weight_decay=nan"],
     "optimizer.weight_decay=nan is not a finite number"),
]

LANDSCAPE = [
    (["landscape=everest"], "landscape=everest is not an option: choose one of beale"),
    (["-m", "landscape=saddle,everest"], "landscape=everest is not an option"),
    (["optimizers=[adamax]"], "'adamax' is not an optimizer option"),
    (["steps=0"], "steps=0 is out of range"),
    (["+landscape.foo=1"], "landscape.foo is not a key of landscape"),
    (["+optimizer_overrides.momentun=0.5"], "(did you mean optimizer_overrides.momentum?)"),
    (["schedule=cosine", "schedule.alpha=3"], "schedule.alpha=3.0 is out of range"),
    (["seed=-1"], "seed=-1 is out of range: valid values are in [0, 4294967295]"),
    (["optimizers=[sgd]", "tracking.uri=sqlite:////proc/no-store/mlflow.db"],
     "Error: cannot create the tracking store folder /proc/no-store"),
    (["optimizers=[sgd]", "output_dir=/proc/nope"], "output_dir=/proc/nope cannot be created"),
    (["grid_points=100000000000"], "grid_points=100000000000 is out of range: valid values "
                                   "are at most 2147483647"),
]

SURFACE = [
    (["optimizers=[sgd,adamax]"], "adamax"),
    (["+trainer.epoch=3"], "(did you mean trainer.epochs?)"),
    (["grid_points=1"], "grid_points=1 is out of range"),
    (["dataset=mnist"], "Error: dataset 'mnist' is not available offline"),
    (["seed=-1"], "seed=-1 is out of range: valid values are in [0, 4294967295]"),
    (["tracking.uri=sqlite:////proc/no-store/mlflow.db"],
     "Error: cannot create the tracking store folder /proc/no-store"),
    (["output_dir=/proc/nope"], "output_dir=/proc/nope cannot be created"),
    (["model.width=1000000000"], "model.width=1000000000 is out of range"),
]

COMPARE = [
    (["--band", "wide"], "Error: argument --band: invalid choice: 'wide'"),
    (["--smooth", "two"], "Error: argument --smooth: invalid int value: 'two'"),
    (["--smooth", "0"], "Error: --smooth must be at least 1, got 0"),
    (["--target-loss", "nan"], "Error: --target-loss must be a finite number"),
    (["--uri", "http://127.0.0.1:9"], "Error: the tracking server http://127.0.0.1:9 is not "
                                      "reachable"),  # port 9: discard, closed
    (["--uri", "sqlite:///no/such/folder/mlflow.db"], "Error: no tracking store at "),
]

GALLERY = [
    (["landscape"], "Error: 'landscape' is not a figure of the gallery: choose from "
                    "landscapes, edge_of_stability"),
    (["surfaces", "--colour"], "Error: unrecognized arguments: --colour (see --help)"),
    (["--tracking-uri", "http://127.0.0.1:9", "landscapes"],
     "Error: the tracking server http://127.0.0.1:9 is not reachable"),
]

_DRIVER = r"""
import contextlib, io, json, runpy, sys, time
sys.modules["tensorflow"] = None  # importing TensorFlow now raises ImportError
results = []
for module, argv in json.load(sys.stdin):
    err = io.StringIO()
    sys.argv = [module, *argv]
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit:
            code = exit.code
        except BaseException as error:
            code = repr(error)
    results.append({"code": code, "stderr": err.getvalue(),
                    "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                    "mlflow": "mlflow" in sys.modules})
print(json.dumps(results))
"""


def walk(cases, tmp_path):
    """Run ``[(module, argv)]`` in one child process; return its results per case."""
    (tmp_path / "keras").mkdir(exist_ok=True)  # an empty Keras cache: nothing downloaded
    env = dict(os.environ, KERAS_HOME=str(tmp_path / "keras"), OPTLAB_PROGRESS="0")
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(cases),
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("refusals")
    store = tmp / "store" / "mlflow.db"

    def args(argv, *more):  # a store and a folder of the test's own, unless the case names one
        more = [f"tracking.uri=sqlite:///{store}", *more]
        return [*argv, *(m for m in more
                         if not any(a.startswith(m.split("=")[0] + "=") for a in argv))]

    cases = [("experiments.train", args(argv)) for argv, _ in TRAIN]
    cases += [("experiments.landscape", args(argv, f"output_dir={tmp / 'out'}"))
              for argv, _ in LANDSCAPE]
    cases += [("experiments.surface", args(argv, f"output_dir={tmp / 'out'}"))
              for argv, _ in SURFACE]
    cases += [("experiments.compare", argv) for argv, _ in COMPARE]
    cases += [("experiments.gallery", [*argv, "--out", str(tmp / "out")])
              for argv, _ in GALLERY]
    results = walk(cases, tmp)
    assert not store.parent.exists(), "a refused input must not create a tracking store"
    assert not (tmp / "out").exists(), "nor write pictures"
    return results


ALL = TRAIN + LANDSCAPE + SURFACE + COMPARE + GALLERY


@pytest.mark.parametrize("index", range(len(ALL)), ids=[" ".join(argv) for argv, _ in ALL])
def test_refused_at_once_in_one_line(results, index):
    fragment = ALL[index][1]
    result = results[index]
    assert result["code"] == 2, result
    assert fragment in result["stderr"], result["stderr"]
    assert result["stderr"].count("\n") == 1 and "Traceback" not in result["stderr"]
    assert not result["mlflow"], "refused before MLflow was needed"
    # Catches heavy imports (TensorFlow alone is ~6 s of CPU), not speed: a loaded machine
    # can double the ~0.6 s a refusal takes; speed.startup measures the time.
    assert result["cpu_s"] < 4.0, result


def _table():  # pragma: no cover - the report's numbers: python tests/test_refusals.py
    import resource
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, KERAS_HOME=tmp, OPTLAB_PROGRESS="0")
        for module, argv in ([("experiments.train", a) for a, _ in TRAIN]
                             + [("experiments.landscape", a) for a, _ in LANDSCAPE]
                             + [("experiments.surface", a) for a, _ in SURFACE]
                             + [("experiments.compare", a) for a, _ in COMPARE]
                             + [("experiments.gallery", a) for a, _ in GALLERY]):
            extra = [] if module.endswith(("compare", "gallery")) or any(
                a.startswith("tracking.uri=") for a in argv) else [
                f"tracking.uri=sqlite:///{tmp}/s/mlflow.db"]
            start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            r = subprocess.run([sys.executable, "-m", module, *argv, *extra], cwd=ROOT,
                               env=env, capture_output=True, text=True)
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            print(f"| `{module.split('.')[1]} {' '.join(argv)}` | {r.returncode} | "
                  f"{time.perf_counter() - start:.2f} | "
                  f"{used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime:.2f} | "
                  f"{r.stderr.strip()[:90]} |")


if __name__ == "__main__":
    _table()


def test_resume_is_refused_from_the_checkpoints_alone(tmp_path):
    """``trainer.resume=true`` is refused without the store only when no checkpoint can be
    of this config; a checkpoint of the config (or an older one without a fingerprint)
    leaves the decision to the store."""
    from experiments.core import resume

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = resume.checkpoint_dir(uri, "run1")
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"")
    (folder / "progress.json").write_text(json.dumps({"step": 3, "config_hash": "other"}))
    with pytest.raises(resume.ResumeError, match="no interrupted or crashed run of this config"):
        resume.check_resumable(uri, "true", "mine")
    resume.check_resumable(uri, "run1", "mine")  # named by id: the store compares configs
    with pytest.raises(resume.ResumeError, match="no checkpoint of a run with that id"):
        resume.check_resumable(uri, "run2", "mine")
    for saved in ({"step": 3, "config_hash": "mine"}, {"step": 3}):
        (folder / "progress.json").write_text(json.dumps(saved))
        resume.check_resumable(uri, "true", "mine")


def _refusal_types():
    """Every refusal type of the project, from the modules that define them."""
    from experiments.benchmark.workloads import BenchmarkError
    from experiments.compare.selection import CompareError
    from experiments.core.checks import ConfigError
    from experiments.core.resume import ResumeError
    from experiments.core.tracking import TrackingUnavailable
    from experiments.data import DatasetUnavailable

    return {ConfigError: "Error in config", ResumeError: "Error in config",
            BenchmarkError: "Error in config", DatasetUnavailable: "Error",
            TrackingUnavailable: "Error", CompareError: "Error"}


@pytest.mark.parametrize("kind", list(_refusal_types()), ids=lambda kind: kind.__name__)
def test_every_refusal_type_ends_in_one_line_and_exit_2(kind, capsys):
    """One path for all: ``refusing`` turns each refusal type (all ``Refusal``s) into its
    prefix and the message folded to one line, exit code 2; other errors pass through."""
    from experiments.core.checks import Refusal
    from experiments.core.cli import EXIT_BAD_INPUT, refusing

    assert issubclass(kind, Refusal)
    with pytest.raises(SystemExit) as ended, refusing():
        raise kind("the value x=3 is\n  not valid: choose 1 or 2")
    assert ended.value.code == EXIT_BAD_INPUT == 2
    assert capsys.readouterr().err == (f"{_refusal_types()[kind]}: the value x=3 is not valid: "
                                       "choose 1 or 2\n")
    with pytest.raises(KeyError), refusing():
        raise KeyError("not a refusal")


# ----------------------------------------------------------------------------- one range check
@pytest.mark.parametrize("config, message", [
    ({"optimizer": {"weight_decay": float("inf")}}, "optimizer.weight_decay=inf is not a finite"),
    ({"a": {"b": [1.0, float("nan")]}}, "a.b[1]=nan is not a finite number"),
    ({"trainer": {"warmup": 2**31}}, "trainer.warmup=2147483648 is out of range: valid values "
                                     "are at most 2147483647"),
    ({"model": {"depth": 100_000}}, "model.depth=100000 is out of range"),
    ({"trainer": {"curvature_iterations": 100_000_000}}, "trainer.curvature_iterations="),
    ({"trainer": {"logical_cpus": 1_000_000}}, "trainer.logical_cpus=1000000 is out of range"),
    ({"dataset": {"seed": 2**32}}, "dataset.seed=4294967296 is out of range: valid values are "
                                   "at most 4294967295"),
])
def test_one_range_check_refuses_what_no_other_check_did(config, message):
    from experiments.core.checks import ConfigError, check_numbers

    with pytest.raises(ConfigError) as info:
        check_numbers(config)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_one_range_check_passes_what_is_in_range():
    from experiments.core.checks import MAX_SEED, check_numbers

    check_numbers({"trainer": {"seed": MAX_SEED, "epochs": 2**31 - 1, "lr": 1e300,
                               "flag": True, "name": "x", "none": None},
                   "model": {"width": 16_384}, "list": [1, 2.5, "a"]})


def test_an_output_folder_is_tested_without_leaving_anything(tmp_path):
    from experiments.core.checks import ConfigError, check_folder

    check_folder("output_dir", tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(ConfigError, match=r"output_dir=.*/file/sub cannot be created or "
                                          "written: Not a directory"):
        check_folder("output_dir", tmp_path / "file" / "sub")


def test_a_sweep_too_large_is_refused_without_listing_it():
    """``range(0, 10**12)`` would take minutes to list: it is counted, not expanded."""
    from experiments.core import cli
    from experiments.core.checks import ConfigError

    fixed, dims = cli._dimensions(["trainer.seed=range(0,1000000000000)", "trainer.epochs=2"],
                                  None, True)
    assert fixed == ["trainer.epochs=2"]
    assert dims == [("trainer.seed", ["trainer.seed=0", "trainer.seed=999999999999"],
                     10**12)]
    with pytest.raises(ConfigError, match="a sweep of 1000000000000 jobs"):
        cli._jobs(fixed, dims)
    _, dims = cli._dimensions(["trainer.seed=range(0,50)", "optimizer=adam,sgd"], None, True)
    jobs = cli._jobs([], dims)  # 100 jobs: the range checked at its ends
    assert ["trainer.seed=49", "optimizer=sgd"] in jobs and len(jobs) == 4


def test_config_dir_and_path_are_checked_too(tmp_path, capsys):
    """``--config-dir`` adds a folder to the search path, ``-cp`` replaces the primary one:
    both are composed and checked like the default (they used to skip the check)."""
    from experiments.core.cli import check_command_line
    from experiments.train.__main__ import _check

    extra = tmp_path / "extra" / "optimizer"
    extra.mkdir(parents=True)
    (extra / "mine.yaml").write_text("defaults:\n  - adam\n  - _self_\nweight_decay: .inf\n")
    with pytest.raises(SystemExit) as ended:
        check_command_line("train", _check, ["--config-dir", str(tmp_path / "extra"),
                                             "optimizer=mine"])
    assert ended.value.code == 2
    assert "optimizer.weight_decay=inf is not a finite number" in capsys.readouterr().err
    check_command_line("train", _check, ["-cp", str(ROOT / "conf"), "trainer.epochs=2"])
