"""``python -m experiments.gallery [NAME ...] [--list] [--dry-run] [--out DIR]``.

Makes the named figures (default: all) from the runs in the tracking store, training the
runs a figure needs when the store does not have them; progress per figure on stderr.
A name that is not a figure is refused with one line and exit code 2 before anything
loads; a figure that fails is named at the end and the exit code is 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from experiments.core.cli import EXIT_FAILED, EXIT_OK, refuse, refusing
from experiments.gallery import GALLERY, ROOT, Context, entries


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=GALLERY, description="Regenerate the figures of the README and docs/ from "
                                  "tracked runs.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="figures to make (default: every one; --list names them)")
    parser.add_argument("--list", action="store_true",
                        help="list the figures, their files and commands, and stop")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what each figure would read from the store or train")
    parser.add_argument("--out", type=Path, default=ROOT,
                        help="folder the docs/... files go under (default: the repository)")
    parser.add_argument("--tracking-uri", default=None,
                        help="the store (default: $MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlruns/mlflow.db)")
    parser.error = lambda message: refuse(f"{message} (see --help)", prefix="Error")
    args = parser.parse_args(argv)
    figures = entries()
    unknown = [n for n in args.names if n not in figures]
    if unknown:
        refuse(f"{unknown[0]!r} is not a figure of the gallery: choose from "
               f"{', '.join(figures)}", prefix="Error")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    figures = entries()
    chosen = [figures[n] for n in dict.fromkeys(args.names)] or list(figures.values())
    if args.list:
        for f in chosen:
            print(f"{f.name}: {f.description}\n  files: {', '.join(f.outputs)}\n"
                  f"  runs: {f.command} ({f.cost})")
        return EXIT_OK
    from experiments.core import tracking

    ctx = Context(root=args.out, uri=args.tracking_uri)
    with refusing():
        tracking.probe_store(ctx.uri)
    failed = []
    for i, figure in enumerate(chosen, 1):
        head = f"[{i}/{len(chosen)}] {figure.name}"
        if args.dry_run:
            print(f"{head}: {figure.status(ctx)} (the runs from scratch: {figure.cost}) → "
                  f"{', '.join(figure.outputs)}")
            continue
        status = figure.status(ctx)
        if "trains" in status:  # say how long before it starts
            status += f"; the runs from scratch take {figure.cost}"
        print(f"{head}: {', '.join(figure.outputs)} ({status})", file=ctx.out, flush=True)
        start = time.perf_counter()
        try:
            figure.make(ctx)
        except Exception as err:  # one figure's failure does not stop the others
            failed.append(figure.name)
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"{head}: FAILED: {message}", file=ctx.out, flush=True)
            continue
        print(f"{head}: done in {time.perf_counter() - start:.0f} s", file=ctx.out,
              flush=True)
    if failed:
        print(f"Not made: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
