"""Sphinx configuration of the optimizer laboratory's documentation site.

Build (warnings are errors, as in CI): ``python -m sphinx -W --keep-going -b html docs
docs/_build/html``. Pages are Markdown (MyST-Parser); the API reference is ``autodoc`` over
the docstrings of ``custom_optimizers`` and the public names of ``experiments``.
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.core import console  # noqa: E402

# No TensorFlow start-up notices in the build's output (autodoc imports TensorFlow), even
# where TF_CPP_MIN_LOG_LEVEL is set (CI sets it; since TensorFlow 2.19 it no longer
# silences them, and ``console.install`` leaves a process alone that sets it).
os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
console.install()

project = "Optimizer laboratory"
author = "the optimizer laboratory's authors"
copyright = "2026, " + author

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: heading anchors for links such as ``page.md#a-heading``, $...$ maths, tables.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
# Links to files in the repository outside docs/ (the README, CHANGELOG, code) point at
# the repository; a link that resolves to nothing is still a warning, hence an error.
suppress_warnings = []

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = "Optimizer laboratory"
html_static_path = []


def _readable_docstrings(app, what, name, obj, options, lines):
    """The packages' module docstrings are plain-text overviews (tables drawn with '=' and
    '-', code in double backquotes), not reStructuredText: they are shown as they are
    written, preformatted. ``**kwargs`` in a Google-style argument list is escaped."""
    if what == "module" and name.startswith("experiments") and lines:
        lines[:] = ["::", ""] + [f"    {line}" for line in lines] + [""]
        return
    for i, line in enumerate(lines):
        lines[i] = re.sub(r"(?<![`\\])\*\*kwargs", r"\\*\\*kwargs", line)


def setup(app):
    # before napoleon (priority 500) turns "Args:" into field lists
    app.connect("autodoc-process-docstring", _readable_docstrings, priority=100)
