"""Run every benchmark and rewrite the speed page's tables (docs/speed.md) with the results.

Usage::

    python -m speed.report [--quick] [--dry-run]

The section sits between ``<!-- speed:start -->`` and ``<!-- speed:end -->``
in docs/speed.md; it gets the machine, the date and one table per benchmark
(``speed.optimizer_step``, ``speed.training`` on the default job and on the
MNIST-1D CNN, ``speed.startup``).
"""

from __future__ import annotations

import argparse
import datetime
import re
from pathlib import Path

from speed import optimizer_step, startup, training

PAGE = Path(__file__).resolve().parents[1] / "docs" / "speed.md"
START, END = "<!-- speed:start -->", "<!-- speed:end -->"


def section(quick: bool) -> str:
    # the step table's own title line becomes emphasis: no second top-level heading in the page
    step = re.sub(r"^# (.*)$", r"*\1*", optimizer_step.main(["--quick"] if quick else []),
                  flags=re.M)
    train = training.main(["--epochs", "2", "--repeats", "3"] if quick else [])
    cnn_job = ["dataset=mnist1d", "model=mnist1d_cnn"]
    train_cnn = training.main(["--epochs", "1", *(["--repeats", "3"] if quick else []), *cnn_job])
    start = startup.main(["--repeats", "1" if quick else "3"])
    today = datetime.date.today().isoformat()
    load = optimizer_step.load_average()
    return "\n\n".join([
        START,
        f"Measured {today} with `python -m speed.report`"
        f"{' --quick' if quick else ''} (the machine is described in the first table; "
        f"load average at the end {load}: on a shared machine the spread columns say how "
        "far to trust a median).",
        "**One optimizer step** (`python -m speed.optimizer_step`):",
        step.strip(),
        "**Training throughput**, default experiment (`python -m speed.training`):",
        train.strip(),
        f"**Training throughput**, MNIST-1D CNN (`python -m speed.training --epochs 1 "
        f"{' '.join(cnn_job)}`):",
        train_cnn.strip(),
        "**Start-up** (`python -m speed.startup`):",
        start.strip(),
        END,
    ])


def replace_section(text: str, new: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: new, text)
    return text.rstrip("\n") + "\n\n## Benchmarks\n\n" + new + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write docs/speed.md")
    args = parser.parse_args(argv)
    new = section(args.quick)
    if args.dry_run:
        print(new)
    else:
        PAGE.write_text(replace_section(PAGE.read_text(), new))
        print(f"docs/speed.md updated ({len(new.splitlines())} lines).")


if __name__ == "__main__":
    main()
