"""A run's checkpoints and its lock (issue 29, items 2 and 5): one process trains a run at
a time, the lock dies with its holder, a checkpoint is one unit swapped in by one rename,
and a damaged one falls back to the previous copy or is refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from experiments.core import resume
from experiments.core.resume import ResumeError, RunLock

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- the lock
def test_a_held_run_is_refused_naming_its_process_and_sigkill_frees_it(tmp_path):
    folder = tmp_path / "checkpoints" / "run1"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from experiments.core.resume import RunLock
        with RunLock({str(folder)!r}, "run1"):
            print("locked", flush=True)
            time.sleep(120)
        """)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResumeError) as refused:
            with RunLock(folder, "run1"):
                pass
        message = str(refused.value)
        assert f"trainer.resume=run1: the run is still being trained by process {holder.pid}@" \
            in message and "\n" not in message
    finally:
        holder.kill()  # SIGKILL: no clean-up runs in the holder
        holder.wait()
    with RunLock(folder, "run1"):  # the kernel dropped the lock with its holder
        assert (folder / "lock").read_text().startswith(f"{os.getpid()}@")
    with RunLock(folder, "run1"):  # and leaving the block releases it
        pass


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def model():
    import keras

    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    net.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return net


def _step(net):
    """One optimizer step: the model's optimizer.iterations goes up by one."""
    net.train_on_batch(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"))
    return int(net.optimizer.iterations.numpy())


@pytest.mark.slow
def test_a_checkpoint_is_one_unit_and_the_previous_one_is_kept(tmp_path, model):
    folder = tmp_path / "run"
    first = resume.save_checkpoint(folder, model, {"step": _step(model)})
    second = resume.save_checkpoint(folder, model, {"step": _step(model)})
    assert os.readlink(folder / "current") == second.name
    assert sorted(p.name for p in folder.glob("step-*")) == sorted([first.name, second.name])
    third = resume.save_checkpoint(folder, model, {"step": _step(model)})
    assert sorted(p.name for p in folder.glob("step-*")) == sorted([second.name, third.name])
    loaded, progress = resume.load_checkpoint(folder)
    assert progress["step"] == progress["optimizer_iterations"] == 3
    assert int(loaded.optimizer.iterations.numpy()) == 3
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


@pytest.mark.slow
def test_a_kill_during_the_swap_leaves_the_previous_checkpoint_current(tmp_path, model,
                                                                      monkeypatch):
    folder = tmp_path / "run"
    resume.save_checkpoint(folder, model, {"step": _step(model)})
    before = os.readlink(folder / "current")

    def killed(*args):
        raise KeyboardInterrupt  # the process stops between writing and swapping

    monkeypatch.setattr(resume.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        resume.save_checkpoint(folder, model, {"step": _step(model)})
    monkeypatch.undo()
    assert os.readlink(folder / "current") == before
    assert [p.name for p in folder.glob("step-*")] == [before], "the half-made one is gone"
    loaded, progress = resume.load_checkpoint(folder)
    assert int(loaded.optimizer.iterations.numpy()) == progress["step"]


@pytest.mark.slow
def test_a_damaged_checkpoint_falls_back_to_the_previous_copy_or_is_refused(tmp_path, model):
    folder = tmp_path / "run"
    old = resume.save_checkpoint(folder, model, {"step": _step(model)})
    new = resume.save_checkpoint(folder, model, {"step": _step(model)})
    data = (new / "model.keras").read_bytes()
    (new / "model.keras").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(zipfile.BadZipFile):  # what resuming met before: a traceback
        zipfile.ZipFile(new / "model.keras")
    notes = []
    loaded, progress = resume.load_checkpoint(
        folder, out=type("Out", (), {"write": lambda self, s: notes.append(s),
                                     "flush": lambda self: None})())
    assert progress["step"] == int(loaded.optimizer.iterations.numpy()) == \
        json.loads((old / "progress.json").read_text())["step"]
    assert (f"skipped the damaged checkpoint(s) {new.name}: model.keras is truncated or "
            "damaged (its SHA-256 is not the one saved)") in "".join(notes)
    (old / "model.keras").write_bytes(b"")
    with pytest.raises(ResumeError) as refused:
        resume.load_checkpoint(folder)
    message = str(refused.value)
    assert "cannot be read" in message and "start it again without trainer.resume" in message
    assert "\n" not in message


@pytest.mark.slow
def test_model_and_progress_are_checked_against_each_other(tmp_path, model):
    """A model saved at another step than its progress (the old kill between the two
    renames) is not resumed: it would replay or skip steps silently."""
    folder = tmp_path / "run"
    old = resume.save_checkpoint(folder, model, {"step": _step(model)})
    new = resume.save_checkpoint(folder, model, {"step": _step(model)})
    saved = json.loads((old / "progress.json").read_text())
    saved["model_sha256"] = json.loads((new / "progress.json").read_text())["model_sha256"]
    (new / "progress.json").write_text(json.dumps(saved))  # a whole model, the wrong progress
    (old / "model.keras").unlink()
    with pytest.raises(ResumeError, match=r"optimizer is at iteration (\d+), its progress was "
                                          r"saved at (\d+)"):
        resume.load_checkpoint(folder)


@pytest.mark.slow
def test_a_checkpoint_of_the_first_layout_is_still_read(tmp_path, model):
    folder = tmp_path / "run"
    folder.mkdir()
    model.save(folder / "model.keras")
    (folder / "progress.json").write_text(json.dumps({"step": 7}))
    assert resume.has_checkpoint(folder)
    _, progress = resume.load_checkpoint(folder)
    assert progress["step"] == 7
    resume.save_checkpoint(folder, model, {"step": 8})  # the new layout supersedes it
    assert not (folder / "model.keras").exists()
    assert resume.load_checkpoint(folder)[1]["step"] == 8


def test_keras_is_required_without_the_known_safe_mode_bypasses():
    """Checkpoints are ``.keras`` files loaded back (on a shared file system too): Keras
    before 3.11 had known bypasses of ``safe_mode`` in model loading."""
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (keras,) = [Requirement(r) for r in project["dependencies"]
                if Requirement(r).name == "keras"]
    assert not keras.specifier.contains("3.10.0") and keras.specifier.contains("3.11.0")
    assert keras.specifier.contains(version("keras"))
