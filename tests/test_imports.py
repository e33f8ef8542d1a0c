"""The shape of the imports: the contracts in ``.importlinter`` hold (no cycles, the house's
layers, custom_optimizers standing alone and reading no config, the floor at the bottom, no
private module or private name used from outside), and the custom contract can fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from import_contracts import reaches

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(cwd: Path = ROOT) -> subprocess.CompletedProcess:
    code = ("from importlinter.cli import lint_imports\n"
            "raise SystemExit(lint_imports(no_cache=True, no_logo=True))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)


def test_import_contracts_hold():
    out = lint_imports()
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "7 kept, 0 broken" in out.stdout, out.stdout


def test_a_reach_into_a_private_name_is_found():
    """``from m import _x`` and ``m._x`` on another project module are reported with their
    lines; a public name, a module's own private name and a private name of an object are
    not."""
    modules = {"experiments", "experiments.landscape", "experiments.landscape.pipeline",
               "experiments.surface.pipeline"}
    source = ("from experiments.landscape.pipeline import _output_dir, run\n"
              "from experiments.landscape import pipeline\n"
              "import experiments.landscape.pipeline as lp\n"
              "pipeline._compose_option(1)\n"
              "lp.run(); lp._helper()\n"
              "optimizer._iterations\n")
    assert reaches(source, "experiments.surface.pipeline", modules) == [
        "experiments.surface.pipeline:1 uses experiments.landscape.pipeline._output_dir",
        "experiments.surface.pipeline:4 uses experiments.landscape.pipeline._compose_option",
        "experiments.surface.pipeline:5 uses experiments.landscape.pipeline._helper"]
    assert reaches("import experiments.landscape.pipeline as me\nme._own()\n",
                   "experiments.landscape.pipeline", modules) == []


@pytest.mark.slow
def test_a_broken_layer_is_reported(tmp_path):
    """The house contract can fail: a copy of the project where ``experiments.core`` imports
    a command (``experiments.train``) breaks it, named in the report."""
    import shutil

    for name in ("experiments", "custom_optimizers", "speed", "tests"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    markdown = tmp_path / "experiments" / "core" / "markdown.py"
    markdown.write_text(markdown.read_text() + "\nfrom experiments.train import config\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    code = ("from importlinter.cli import lint_imports\n"
            "raise SystemExit(lint_imports(no_cache=True, no_logo=True))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode != 0
    assert "The house" in out.stdout and "BROKEN" in out.stdout
    assert "experiments.core.markdown -> experiments.train.config" in out.stdout, out.stdout
