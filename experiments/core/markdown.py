"""One Markdown table writer for every report (compare, landscapes, benchmarks)."""

from __future__ import annotations

from typing import Iterable, Sequence


def table(header: Sequence, rows: Iterable[Sequence], align: str = "") -> str:
    """A Markdown table: ``header``, then one line per row; cells are ``str()``-ed and a
    ``|`` inside a cell is escaped. ``align`` holds one letter per column, ``l`` (default)
    or ``r`` (numbers), e.g. ``"lrr"``."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    align = align.ljust(len(header), "l")
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])
