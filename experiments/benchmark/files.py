"""What the benchmark keeps on local disk: the trial journal (tracking off) and files
replaced whole (the report's tables).

``Journal`` is the trial store when MLflow tracking is off: ``<output_dir>/trials.jsonl``,
one JSON line per finished trial, appended, flushed and fsync'd before the next trial is
reported, so a killed benchmark loses at most the trial it was running; a rerun with the
same ``benchmark_id`` and ``output_dir`` skips the trials it holds. A line torn by a kill
(the last one, half written) is skipped and ended before the next append.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable

JOURNAL = "trials.jsonl"


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` beside ``path``, fsync'd, then renamed over ``path``: a reader
    (or a kill) sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(frame, path: Path, **kwargs) -> None:
    """``frame.to_csv(path, **kwargs)``, replaced whole."""
    replace_atomically(path, lambda tmp: frame.to_csv(tmp, **kwargs))


def write_text(path: Path, text: str) -> None:
    """``path.write_text(text)``, replaced whole."""
    replace_atomically(path, lambda tmp: tmp.write_text(text))


class Journal:
    """The trial store with tracking off (see the module docstring); the interface of
    ``experiments.benchmark.store.TrialStore``, whose parent run it has no need of."""

    enabled = False  # no MLflow
    parent_id = None

    def __init__(self, folder: Path, benchmark_id: str):
        self.path = Path(folder) / JOURNAL
        self.benchmark_id = benchmark_id

    def open_parent(self, params: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def ending_parent(self):
        yield

    def close_parent(self, metrics: dict, files: list, plots: list) -> None:
        pass

    def finished(self) -> dict[str, dict]:
        """trial key -> row for every whole line of this benchmark id."""
        out = {}
        if not self.path.exists():
            return out
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:  # torn by a kill
                    continue
                if entry.get("benchmark_id") == self.benchmark_id:
                    out[entry["trial_key"]] = entry["row"]
        return out

    def log(self, spec, row: dict) -> None:
        """Append the trial's line and fsync it (under a lock: shards may share it)."""
        import fcntl

        from experiments.benchmark.store import json_default

        line = json.dumps({"benchmark_id": self.benchmark_id, "trial_key": spec.key(),
                           "row": row}, default=json_default) + "\n"
        with open(self.path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a line torn by a kill: end it
                    f.write(b"\n")
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
