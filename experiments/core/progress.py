"""Progress of long work on stderr: a bar on a terminal, a plain line now and then elsewhere.

    with Progress(total=150, label="adam-mnist1d", unit="epoch") as bar:
        for epoch in range(150):
            ...
            bar.update(loss=0.31, val_loss=0.29)

On a terminal one line is redrawn in place (at most ~10 times a second): the label, a
bar, ``done/total``, the fields given to ``update`` and the elapsed time with an ETA.
Elsewhere (a log file, a pipe, a sweep's job) a plain line is written at the first update,
then at most every ``interval_s`` seconds, and always at the last one, so logs stay short.

Turned off by ``enabled=False`` (the commands' settings, e.g. ``trainer.progress=false``)
or for every command at once by the environment variable ``OPTLAB_PROGRESS=0`` (also
``false``/``off``/``no``): useful for sweeps, whose jobs would otherwise interleave lines.
This module imports nothing heavy, so any command can use it before TensorFlow loads.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TextIO

ENV = "OPTLAB_PROGRESS"
OFF = ("0", "false", "off", "no")
INTERVAL_S = 5.0  # plain output: at most one line per this many seconds
REDRAW_S = 0.1  # terminal: at most this often
BAR_WIDTH = 20


def enabled_by_environment() -> bool:
    """False when ``OPTLAB_PROGRESS`` turns progress off for every command."""
    return os.environ.get(ENV, "").strip().lower() not in OFF


def format_seconds(seconds: float) -> str:
    """``75.2`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Progress:
    """``done/total`` units of work with the latest ``fields``, shown on ``stream``.

    ``initial`` units count as done before this process started (a resumed training):
    they are shown but not used to estimate the rate. ``stream`` defaults to
    ``sys.stderr`` at construction; ``interval_s`` paces the plain output.
    """

    def __init__(self, total: int, label: str, enabled: bool = True, unit: str = "step", *,
                 initial: int = 0, stream: TextIO | None = None,
                 interval_s: float = INTERVAL_S):
        if total < 0 or initial < 0:
            raise ValueError(f"total={total} and initial={initial} must be >= 0")
        self.total, self.label, self.unit = int(total), label, unit
        self.enabled = bool(enabled) and enabled_by_environment()
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self.initial = self.done = int(initial)
        self.fields: dict = {}
        self.start = time.monotonic()
        self._last_shown: float | None = None
        self._shown_done: int | None = None
        self._drawn = False
        self.closed = False
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty())

    # -- context manager ------------------------------------------------------------
    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reporting --------------------------------------------------------------------
    def update(self, n: int = 1, **fields) -> None:
        """``n`` more units done; ``fields`` (e.g. ``loss=0.31``) replace the shown ones."""
        self.done += n
        self.fields.update(fields)
        if not self.enabled or self.closed:
            return
        now = time.monotonic()
        last = self.done >= self.total
        if self.terminal:
            if last or self._last_shown is None or now - self._last_shown >= REDRAW_S:
                self._draw(now)
        elif last or self._last_shown is None or now - self._last_shown >= self.interval_s:
            self._write_line(now)

    def close(self) -> None:
        """End the display: the terminal line is finished with a newline; a plain stream
        gets the final state if it was not the last line written."""
        if self.closed:
            return
        self.closed = True
        if not self.enabled:
            return
        now = time.monotonic()
        if self.terminal:
            if self._drawn or self.done > self.initial:
                self._draw(now)
                self.stream.write("\n")
                self.stream.flush()
        elif self._shown_done is not None and self._shown_done != self.done:
            self._write_line(now)

    # -- text -------------------------------------------------------------------------
    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds left at the rate of this process's units so far (None before any)."""
        now = time.monotonic() if now is None else now
        made = self.done - self.initial
        if made <= 0 or now <= self.start:
            return None
        return max(self.total - self.done, 0) * (now - self.start) / made

    def text(self, now: float | None = None, bar: bool = False) -> str:
        """The status line (without a bar unless ``bar``)."""
        now = time.monotonic() if now is None else now
        units = self.unit + ("s" if self.total != 1 and not self.unit.endswith("s") else "")
        parts = [self.label]
        if bar:
            filled = BAR_WIDTH if self.total == 0 else min(
                BAR_WIDTH, BAR_WIDTH * self.done // self.total)
            parts.append("[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]")
        parts.append(f"{self.done}/{self.total} {units}")
        parts += [f"{k}={_format_value(v)}" for k, v in self.fields.items()]
        timing = format_seconds(now - self.start)
        eta = self.eta_seconds(now)
        if self.done < self.total and eta is not None:
            timing += f" ETA {format_seconds(eta)}"
        parts.append(timing)
        return "  ".join(parts) if bar else " ".join(parts)

    def _draw(self, now: float) -> None:
        width = shutil.get_terminal_size((100, 20)).columns
        line = self.text(now, bar=True)[:max(width - 1, 10)]
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self._drawn = True
        self._last_shown, self._shown_done = now, self.done

    def _write_line(self, now: float) -> None:
        self.stream.write(self.text(now) + "\n")
        self.stream.flush()
        self._last_shown, self._shown_done = now, self.done
