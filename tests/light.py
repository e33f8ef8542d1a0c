"""The "imports stay light" check, written once: run code in a fresh interpreter and name
the heavy libraries it left imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "mlflow", "sklearn", "mlxtend", "mnist1d")


def run_light(code: str, heavy: tuple[str, ...] = HEAVY, env: dict | None = None,
              timeout: float = 60) -> str:
    """Run ``code`` in a new Python process (project root as the folder and on the path);
    fail the test if it fails or if any module of ``heavy`` is imported afterwards.
    Returns what it printed."""
    check = (f"\nimport sys as _sys\n_heavy = [m for m in {tuple(heavy)!r} if m in _sys.modules]"
             f"\nassert not _heavy, f'imported: {{_heavy}}'\n")
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    out = subprocess.run([sys.executable, "-c", code + check], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout
