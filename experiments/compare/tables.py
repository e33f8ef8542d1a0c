"""The comparison table as cells, text, Markdown and CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

from experiments.core import markdown
from experiments.compare.summary import Column, Row, Stat

# ------------------------------------------------------------------------------- output


def _fmt(x: float, digits: int) -> str:
    if math.isnan(x):
        return "–"
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def cell(st: Stat, digits: int, runs: int) -> str:
    if st.n == 0:
        return "–"
    text = _fmt(st.mean, digits) + ("" if math.isnan(st.std) else f" ± {_fmt(st.std, digits)}")
    return text + (f" (n={st.n})" if st.n != runs else "")


def table_cells(rows: Sequence[Row], keys: Sequence[str], cols: Sequence[Column]):
    header = (list(keys) + ["runs", "not finished"] + [c.title for c in cols]
              + ["target reached"])
    body = []
    for r in rows:
        body.append([r.label[k] for k in keys]
                    + [str(r.runs), str(r.unfinished) if r.kind == "optimizer" else ""]
                    + [cell(r.stats[c.key], c.digits, r.runs) for c in cols] + [r.reached])
    return header, body


def text_table(header, body) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line("-" * w for w in widths)] + [line(b) for b in body])


def markdown_table(header, body) -> str:
    return markdown.table(header, body)


def write_csv(path: Path, rows: Sequence[Row], keys: Sequence[str], cols: Sequence[Column]):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row"] + list(keys) + ["runs", "not_finished"]
                   + [f"{c.key}_{s}" for c in cols for s in ("mean", "std", "n")]
                   + ["target_reached"])
        for r in rows:
            w.writerow([r.kind] + [r.label[k] for k in keys] + [r.runs, r.unfinished]
                       + [v for c in cols for v in (r.stats[c.key].mean, r.stats[c.key].std,
                                                     r.stats[c.key].n)]
                       + [r.reached])
