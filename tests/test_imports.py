"""The shape of the imports: the contracts in ``.importlinter`` (no cycles, custom_optimizers
standing alone, the refusal type at the bottom) and no module reaching into another
package's private names."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("experiments", "custom_optimizers", "benchmarks")


def test_import_contracts_hold():
    code = ("from importlinter.cli import lint_imports\n"
            "raise SystemExit(lint_imports(no_cache=True, no_logo=True))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout and "KEPT" in out.stdout, out.stdout


def private_reaches(root: Path = ROOT) -> list[str]:
    """``from a.b.c import _name`` in a module outside package ``a.b``: one line each."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            home = module.removesuffix(".__init__") if path.name == "__init__.py" else \
                module.rpartition(".")[0]
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                        and node.module.split(".")[0] in PACKAGES):
                    continue
                owner = node.module.rpartition(".")[0]
                for alias in node.names:
                    if alias.name.startswith("_") and not f"{home}.".startswith(f"{owner}."):
                        found.append(f"{module}:{node.lineno} imports {node.module}.{alias.name}")
    return found


def test_no_module_reaches_into_another_packages_private_names():
    assert private_reaches() == []


def test_a_reach_into_private_names_is_found(tmp_path):
    """The check above can fail: a module of ``experiments`` importing a private helper of
    ``experiments.landscapes.pipeline`` is reported, one of the same package is not."""
    (tmp_path / "experiments" / "landscapes").mkdir(parents=True)
    (tmp_path / "experiments" / "surfaces.py").write_text(
        "from experiments.landscapes.pipeline import _output_dir\n")
    (tmp_path / "experiments" / "landscapes" / "config.py").write_text(
        "from experiments.landscapes.pipeline import _output_dir\n")
    assert private_reaches(tmp_path) == [
        "experiments.surfaces:1 imports experiments.landscapes.pipeline._output_dir"]
