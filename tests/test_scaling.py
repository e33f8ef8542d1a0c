"""Scaling out with Hydra's plugins: submitit launchers (SLURM config, local executor) and
Optuna search-space presets (``conf/hparams_search``) whose trials are MLflow runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from experiments.train.config import register_schemas as register_train_schemas
from experiments.core import registry
from experiments.train.config import validate

register_train_schemas()

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.epochs=2", "trainer.max_steps=6", "trainer.batch_size=16",
        "tracking.log_model=false", "tracking.log_plots=false"]
PRESETS = sorted(f"{name}_optuna" for name in registry.rule_names())


def hydra_cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def runs_of(uri):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name("optimizer-lab")
    return [] if exp is None else c.search_runs([exp.experiment_id])


def cli(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


# ----------------------------------------------------------------------------- submitit
def test_slurm_config_is_accepted_by_submitit(tmp_path, monkeypatch):
    """The shipped SLURM config composes and every key reaches a real sbatch script."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    cfg = hydra_cfg("hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}")
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher.pop("_target_").endswith("submitit_launcher.SlurmLauncher")
    assert (launcher["timeout_min"], launcher["cpus_per_task"], launcher["mem_gb"]) == (120, 4, 8)
    assert launcher["max_num_timeout"] == 0
    # submitit refuses to build a SLURM executor without srun: a stand-in on PATH suffices
    # to write the batch script (nothing is submitted). The launcher passes keys the same
    # way: shared ones as they are, SLURM-only ones prefixed with slurm_.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    folder = launcher.pop("submitit_folder")
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                     slurm_max_num_timeout=launcher.pop("max_num_timeout"))
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in shared else f"slurm_{k}": v
                                  for k, v in launcher.items()})
    script = executor._executor._make_submission_file_text("python -u -m x", "uid")
    for line in ("#SBATCH --time=120", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8GB",
                 "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1"):
        assert line in script, script
    assert "--gpus" not in script and "--partition" not in script, script


@pytest.mark.slow
def test_submitit_local_sweep_lands_two_finished_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = tmp_path / "sweep"
    result = cli("-m", "hydra/launcher=local", "hydra.launcher.timeout_min=5",
                 "optimizer=adam,sgd", *TINY, f"tracking.uri={uri}", f"hydra.sweep.dir={sweep}",
                 timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Submitit 'local' sweep" in result.stdout + result.stderr
    assert list((sweep / ".submitit").glob("*/*_result.pkl")), "jobs ran through submitit"
    runs = runs_of(uri)
    assert sorted(r.data.tags["optimizer"] for r in runs) == ["adam", "sgd"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["sweep"] for r in runs} == {str(sweep)}
    assert sorted(r.data.tags["sweep_job"] for r in runs) == ["0", "1"]


# ----------------------------------------------------------------------------- Optuna
def test_every_rule_has_a_search_preset():
    """One preset per rule module on disk and per ``conf/optimizer`` option of a custom
    rule: lists made without the registry."""
    from hydra.core.config_store import ConfigStore

    stored = sorted(n.removesuffix(".yaml") for n in ConfigStore.instance().list("hparams_search"))
    modules = (ROOT / "custom_optimizers" / "rules").glob("[!_]*.py")
    assert stored == sorted(f"{p.stem}_optuna" for p in modules)
    options = (ROOT / "conf" / "optimizer").glob("*.yaml")
    assert stored == sorted(f"{p.stem}_optuna" for p in options if not p.stem.startswith("keras_"))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.slow
def test_search_space_stays_inside_the_valid_ranges(preset):
    """Both ends of every searched interval make a config that ``validate`` accepts, for
    the custom optimizer and its Keras twin, and the space is the rule's own."""
    name = preset.removesuffix("_optuna")
    parser = OverridesParser.create()
    twin = [registry.option_name(name, "keras")] if registry.rule(name).keras else []
    for option in [name, *twin]:
        cfg = hydra_cfg(f"hparams_search={preset}", f"optimizer={option}")
        sweeper = cfg.hydra.sweeper
        assert sweeper._target_.endswith("OptunaSweeper")
        assert (sweeper.direction, sweeper.storage) == ("minimize", None)
        assert cfg.optimizer.name == name and cfg.tracking.tags.search == preset
        assert set(sweeper.params) == {f"optimizer.{k}" for k in registry.lab(name).search_space}
        for key, space in sweeper.params.items():
            sweep = parser.parse_override(f"{key}={space}").value()
            assert key.startswith("optimizer.") and sweep.start < sweep.end, (key, space)
            for end in (sweep.start, sweep.end):
                validate(hydra_cfg(f"optimizer={option}", f"{key}={end}"))


@pytest.mark.slow
def test_optuna_study_trials_are_runs_grouped_under_the_study(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = tmp_path / "study"
    result = cli("-m", "hparams_search=adam_optuna", "hydra.sweeper.n_trials=3", *TINY,
                 f"tracking.uri={uri}", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = runs_of(uri)
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["sweep"] for r in runs} == {str(sweep)}, "one study, one tag"
    assert {r.data.tags["search"] for r in runs} == {"adam_optuna"}
    assert sorted(r.data.tags["sweep_job"] for r in runs) == ["0", "1", "2"]
    rates = {float(r.data.params["optimizer.learning_rate"]) for r in runs}
    low, high = registry.lab("adam").search_space["learning_rate"].value_range()
    assert len(rates) == 3 and all(low <= lr <= high for lr in rates)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    best = min(runs, key=lambda r: r.data.metrics["val_loss"])
    assert results["best_value"] == pytest.approx(best.data.metrics["val_loss"], rel=1e-6)
    assert results["best_params"]["optimizer.learning_rate"] == pytest.approx(
        float(best.data.params["optimizer.learning_rate"]))
