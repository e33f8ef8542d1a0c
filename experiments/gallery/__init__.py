"""``python -m experiments.gallery``: every figure the README and ``docs/`` show, from runs.

A figure is one ``Figure`` entry in ``FIGURES``: its name, the files it writes (paths from
the repository root, e.g. ``docs/edge_of_stability.png``), the command whose runs it draws,
how long making those runs takes, and two functions of a ``Context``: ``status`` (what is
in the store, what would be made: the dry run) and ``make`` (read the runs back from the
MLflow store, or make them when they are not there, and draw). A new figure is one more
``register(Figure(...))`` in a module imported by ``entries()``.

    python -m experiments.gallery                        # every figure
    python -m experiments.gallery surfaces landscapes    # some, by name
    python -m experiments.gallery --list                 # names, files and commands
    python -m experiments.gallery --dry-run              # what would be read, what trained

Runs are found by their tags: the preset (``challenge=<preset>``), and the digest of the
config that determines their numbers (``config_hash``, ``experiments.core.resume.config_hash``),
so a run made by the figure's command by hand is found as well as one the gallery made.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from experiments.core import PROJECT_ROOT

ROOT = PROJECT_ROOT
GALLERY = "python -m experiments.gallery"
# An image link of the README or of a page in docs/: ![alt](path)
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


@dataclass
class Context:
    """Where a figure goes and where its runs are: ``root`` holds the outputs (``docs/...``
    below it: the repository, or a test's folder), ``uri`` the tracking store; ``log``
    prints a line of progress (stderr)."""

    root: Path = ROOT
    uri: str | None = None
    out: TextIO = field(default_factory=lambda: sys.stderr)

    def __post_init__(self):
        from experiments.core import tracking

        self.uri = tracking.resolve_tracking_uri(self.uri)

    def path(self, output: str) -> Path:
        """Where ``output`` (a repository path) is written; its folder made."""
        target = self.root / output
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def log(self, message: str) -> None:
        print(f"  {message}", file=self.out, flush=True)


@dataclass(frozen=True)
class Figure:
    """One entry of the gallery.

    ``outputs``: the files written, as repository paths (``docs/x.png``); ``command``: the
    command that makes the runs the figure is drawn from (the README's caption names it
    with ``python -m experiments.gallery <name>``); ``cost``: how long that takes from an
    empty store; ``make(ctx)`` writes every output under ``ctx.root``; ``status(ctx)``
    says, without making anything, which runs are stored and what would be made.
    """

    name: str
    outputs: tuple[str, ...]
    command: str
    cost: str
    make: Callable[[Context], None]
    status: Callable[[Context], str]
    description: str = ""

    @property
    def gallery_command(self) -> str:
        return f"{GALLERY} {self.name}"


FIGURES: dict[str, Figure] = {}


def register(figure: Figure) -> Figure:
    if figure.name in FIGURES:
        raise ValueError(f"gallery figure {figure.name!r} is registered twice")
    FIGURES[figure.name] = figure
    return figure


def entries() -> dict[str, Figure]:
    """Every registered figure, in the README's order (importing the entry modules)."""
    from experiments.gallery import figures  # noqa: F401 (they register themselves)
    from experiments.gallery import benchmark_figures  # noqa: F401  (after: README order)

    return FIGURES


def owner(output: str) -> Figure | None:
    """The figure whose outputs include the repository path ``output``."""
    return next((f for f in entries().values() if output in f.outputs), None)


def linked_images(root: Path = ROOT) -> dict[str, list[str]]:
    """Every image the README and the pages in ``docs/`` link, as repository paths, with
    the pages that link it."""
    found: dict[str, list[str]] = {}
    pages = [root / "README.md", *sorted(p for p in (root / "docs").rglob("*.md")
                                         if "_build" not in p.parts)]
    for page in pages:
        for target in IMAGE_LINK.findall(page.read_text()):
            if "://" in target:
                continue
            path = (page.parent / target).resolve().relative_to(root.resolve()).as_posix()
            found.setdefault(path, []).append(page.relative_to(root).as_posix())
    return found
