"""``experiments.core.progress``: what a user sees on a terminal and in a log, on a fake clock."""

from __future__ import annotations

import io
import types

import pytest

from experiments.core import progress as progress_module
from experiments.core.progress import Progress, format_seconds


class Clock:
    def __init__(self):
        self.now = 100.0

    def monotonic(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(progress_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    monkeypatch.delenv(progress_module.ENV, raising=False)
    monkeypatch.setenv("COLUMNS", "120")  # the bar is cut to the terminal width
    return fake


def test_plain_stream_writes_first_paced_and_last_lines(clock):
    out = io.StringIO()
    with Progress(10, "adam-digits", unit="epoch", stream=out, interval_s=5.0) as bar:
        for k in range(10):
            clock.now += 1.0
            bar.update(epoch_loss=1.0 / (k + 1), val_loss=0.123456)
    lines = out.getvalue().splitlines()
    # 1 s per epoch, one line per 5 s: epochs 1, 6 and the last one, 10.
    assert [line.split()[1] for line in lines] == ["1/10", "6/10", "10/10"]
    assert lines[0] == "adam-digits 1/10 epochs epoch_loss=1 val_loss=0.1235 0:01 ETA 0:09"
    assert lines[1].endswith("0:06 ETA 0:04")
    assert lines[2] == "adam-digits 10/10 epochs epoch_loss=0.1 val_loss=0.1235 0:10"


def test_close_reports_where_work_stopped(clock):
    out = io.StringIO()
    with Progress(100, "sweep", unit="trial", stream=out, interval_s=60.0) as bar:
        for _ in range(7):
            clock.now += 2.0
            bar.update()
    lines = out.getvalue().splitlines()
    assert lines == ["sweep 1/100 trials 0:02 ETA 3:18", "sweep 7/100 trials 0:14 ETA 3:06"]


def test_terminal_redraws_one_line_with_a_bar(clock):
    out = Terminal()
    with Progress(4, "landscape rosenbrock", unit="method", stream=out) as bar:
        for _ in range(2):
            clock.now += 3.0
            bar.update(last="adam")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, finished at close
    frames = [f.replace("\x1b[K", "") for f in text.rstrip("\n").split("\r")[1:]]
    assert frames[0] == "landscape rosenbrock  [#####...............]  1/4 methods  last=adam  0:03 ETA 0:09"
    assert frames[-1].startswith("landscape rosenbrock  [##########..........]  2/4 methods")


def test_terminal_redraws_are_rate_limited(clock):
    out = Terminal()
    bar = Progress(1000, "x", stream=out)
    for _ in range(999):
        clock.now += 0.001  # 1000 updates a second
        bar.update()
    clock.now += 0.001
    bar.update()  # the last is always drawn
    frames = out.getvalue().split("\r")[1:]
    assert 8 <= len(frames) <= 12, len(frames)
    assert "1000/1000" in frames[-1]


def test_resumed_work_estimates_from_this_process_only(clock):
    out = io.StringIO()
    bar = Progress(10, "resumed", unit="epoch", initial=6, stream=out)
    clock.now += 2.0
    bar.update()  # 1 epoch in 2 s, 3 left
    assert out.getvalue() == "resumed 7/10 epochs 0:02 ETA 0:06\n"
    assert bar.eta_seconds() == pytest.approx(6.0)


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_turned_off_writes_nothing(clock, monkeypatch, how):
    if how == "environment":
        monkeypatch.setenv(progress_module.ENV, "off")
    for stream in (io.StringIO(), Terminal()):
        with Progress(3, "quiet", enabled=how != "argument", stream=stream) as bar:
            for _ in range(3):
                clock.now += 10.0
                bar.update(loss=1.0)
        assert stream.getvalue() == ""
        assert bar.done == 3 and bar.fields == {"loss": 1.0}


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 75.2, 3725)] == ["0:00", "1:00", "1:15",
                                                                    "1:02:05"]
    with pytest.raises(ValueError):
        Progress(-1, "bad")
