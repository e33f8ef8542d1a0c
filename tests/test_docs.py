"""The front door and the site: the README stays short and its optimizer table equals the
registry's; every local link of the README and the site resolves; no internal issue
number in anything a user reads; the site builds with Sphinx with warnings as errors, and
a broken link or a missing image does fail that build."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.gallery import readme

ROOT = Path(__file__).resolve().parents[1]
QUICK_START = ('pip install -e . && python -m experiments.train',
               'pip install -e ".[dev]" && python -m pytest')
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\d+|\bissue-\d+", re.I)


def _pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md",
            *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts)]


def _build(source: Path, out: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    """The site's build command; with ``TF_CPP_MIN_LOG_LEVEL`` set as CI sets it (the
    build's output must stay free of TensorFlow's notices all the same)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E",
                           "-b", "html", str(source), str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_readme_is_a_short_front_door_with_the_quick_start_unchanged():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 220
    head = "\n".join(text.splitlines()[:40])  # the first screen
    for command in QUICK_START:
        assert command in head, command
    assert "mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db" in head
    assert "workflowType=machine_learning" in head
    assert "Model training" not in text.split("## The optimizers")[0]  # no manual step


def test_the_readme_optimizer_table_is_the_registrys(monkeypatch):
    """The table between the markers is what the registry gives today; a rule added to
    the registry makes it stale, and the command's --check says so."""
    from experiments.core import registry

    text = (ROOT / "README.md").read_text()
    current = text.split(readme.START)[1].split(readme.END)[0].strip()
    assert current == readme.table(), f"the README's optimizer table is stale: run {readme.COMMAND}"
    rows = current.splitlines()[2:]
    assert [re.search(r"\(`(\w+)`\)", r).group(1) for r in rows] == list(registry.rule_names())
    adam = next(r for r in rows if "(`adam`)" in r)
    assert "`keras.optimizers.Adam(η, ρ1, ρ2, epsilon=δ)`" in adam and "as δ → 0" in adam
    assert "exactly" in next(r for r in rows if "(`lion`)" in r)
    assert "Chen et al. 2023" in next(r for r in rows if "(`lion`)" in r)
    assert readme.main(["--check"]) == 0
    rules = registry.rules()
    monkeypatch.setattr(registry, "rules", lambda: rules[:-1])
    assert readme.main(["--check"]) == 1


def test_every_local_link_and_image_resolves():
    broken = []
    for page in _pages():
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in LINK.findall(text) + IMAGE.findall(text):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_no_internal_issue_number_where_a_user_reads():
    """README, CHANGELOG, the site, and every string the commands print or log (the
    sources of experiments/, speed/ and conf/)."""
    sources = [*_pages(), *ROOT.glob("experiments/**/*.py"), *ROOT.glob("speed/**/*.py"),
               *ROOT.glob("conf/**/*.yaml"), *ROOT.glob("custom_optimizers/**/*.py")]
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in sources
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if ISSUE_NUMBER.search(line)]
    assert not found, found


@pytest.mark.slow
def test_the_site_builds_without_a_warning(tmp_path):
    done = _build(ROOT / "docs", tmp_path / "html")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    warnings = [line for line in done.stderr.splitlines()
                if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]
    assert not warnings, warnings
    html = tmp_path / "html"
    api = (html / "api.html").read_text()
    assert "Lion" in api and "Formula card" in api  # the docstrings made it in
    assert (html / "_images" / "spectrum_real.png").exists()
    assert 'href="benchmark/results.html"' in (html / "index.html").read_text()


@pytest.mark.slow
def test_a_broken_link_or_a_missing_image_fails_the_build(tmp_path):
    """The site's own configuration, on a two-page site with one of each mistake."""
    site = tmp_path / "docs"
    site.mkdir()
    shutil.copy(ROOT / "docs" / "conf.py", site / "conf.py")
    (site / "index.md").write_text("# Home\n\n```{toctree}\npage\n```\n")
    (site / "page.md").write_text("# Page\n\nSee [the other page](nowhere.md).\n\n"
                                  "![a figure](missing.png)\n")
    (site / "orphan.md").write_text("# Not in any table of contents\n")
    done = _build(site, tmp_path / "html", timeout=120)
    assert done.returncode != 0
    assert "nowhere.md" in done.stderr, done.stderr
    assert "missing.png" in done.stderr, done.stderr
    assert "orphan" in done.stderr and "toctree" in done.stderr, done.stderr
