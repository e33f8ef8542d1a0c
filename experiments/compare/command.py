"""The comparison itself (select, summarise, write, log) and its command line."""

from __future__ import annotations

import argparse
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

from experiments.core import tracking
from experiments.core.cli import EXIT_FAILED, refuse, refusing
from experiments.compare.plots import make_plots
from experiments.compare.selection import (COMPARISON, RUN_TYPE_TAG, CompareError, Selection,
                                          select_runs)
from experiments.compare.summary import (build_rows, columns, group_keys, missing_messages,
                                        summarize_run, varying_params)
from experiments.compare.tables import markdown_table, table_cells, text_table, write_csv
from experiments.core.run_status import ended_run

HISTORY_THREADS = 8
NOTE_CHARS = 7900  # the run description (a tag: MLflow keeps 8000 characters)


# --------------------------------------------------------------------------------- main


@dataclass
class Result:
    rows: list
    table: str
    markdown: str
    csv_path: Path
    markdown_path: Path
    plots: list
    notes: list
    run_id: str | None = None


def compare(sel: Selection, *, uri: str | None = None, out_dir: Path | None = None,
            target_loss: float = 0.5, target_metric: str = "loss", smooth: int = 10,
            band: str = "minmax", group_by: Sequence[str] = (), plots: bool = True,
            log_run: bool = True, progress: Callable[[str], None] | None = None) -> Result:
    """Select, summarise, write (with ``plots``) and (``log_run``) log a comparison; see
    the module doc."""
    if smooth < 1:
        raise CompareError(f"--smooth must be at least 1, got {smooth}")
    if not math.isfinite(target_loss):
        raise CompareError(f"--target-loss must be a finite number, got {target_loss}")
    uri = tracking.resolve_tracking_uri(uri)
    db = tracking.local_store_path(uri)
    if db is not None and not db.exists():
        raise CompareError(f"no tracking store at {db} (train something first, or pass --uri)")
    if db is None:  # a server: a short health check instead of MLflow's minutes of retries
        try:
            tracking.probe_store(uri)
        except tracking.TrackingUnavailable as err:
            raise CompareError(str(err)) from None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs, skipped_comparisons = select_runs(client, sel)
    if progress:
        progress(f"Comparing {len(runs)} runs of {sel.describe()}; reading metric histories...")
    with ThreadPoolExecutor(HISTORY_THREADS) as pool:  # a remote server answers in parallel
        summaries = list(pool.map(
            lambda r: summarize_run(client, r, target_metric, target_loss, smooth), runs))
    cols = columns(target_metric, target_loss)
    keys = group_keys(summaries, group_by)
    notes = []
    if not any(s.finished for s in summaries):
        notes.append(f"none of the {len(runs)} selected runs finished; nothing to summarise")
    notes += missing_messages(summaries, cols)
    for name, values in varying_params([s for s in summaries if s.finished], keys).items():
        shown = ", ".join(values[:5]) + (" ..." if len(values) > 5 else "")
        notes.append(f"runs grouped together differ in {name} ({shown}); "
                     f"add --group-by {name} to tell them apart")
    rows = build_rows(summaries, keys, cols)
    header, body = table_cells(rows, keys, cols)
    table = text_table(header, body)

    out_dir = Path(out_dir or Path("outputs") / "compare" / datetime.now().strftime(
        "%Y-%m-%d_%H-%M-%S"))
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "comparison.csv", out_dir / "comparison.md"
    write_csv(csv_path, rows, keys, cols)
    subtitle = sel.describe()
    written: list[Path] = []
    if plots:
        (out_dir / "plots").mkdir(exist_ok=True)
        written, skipped_plots = make_plots(summaries, keys, out_dir / "plots", band, smooth,
                                            subtitle)
        notes += skipped_plots
    explain = (f"Mean ± sample std over the finished runs of each group ('runs'; a cell "
               f"shows its own n where some runs lack the metric); a difference row is "
               f"custom − keras of the means, its ± the std of the same-seed differences. "
               f"Steps to {target_metric}≤{target_loss:g}: first logged step where the "
               f"{smooth}-point trailing mean of '{target_metric}' is at or below the target, "
               f"over the runs that reached it ('target reached'). Epoch time: each run's "
               f"median epoch_time_s (the first epoch includes tracing).")
    markdown = "\n".join(["# Optimizer comparison", "", f"Runs: {subtitle} — {len(runs)} "
                          f"selected, {sum(s.finished for s in summaries)} finished.", "",
                          markdown_table(header, body), "", explain]
                         + ([""] + [f"- {n}" for n in notes] if notes else [])
                         + ([""] + [f"![{p.stem}](plots/{p.name})" for p in written]))
    md_path.write_text(markdown + "\n")
    result = Result(rows, table, markdown, csv_path, md_path, written, notes)
    if skipped_comparisons and progress:
        progress(f"({skipped_comparisons} earlier comparison runs matched and were left out)")
    if log_run:
        result.run_id = _log_comparison(uri, sel, result, len(runs), target_loss,
                                        target_metric, smooth, band, group_by)
    return result


def _log_comparison(uri, sel, result, n_runs, target_loss, target_metric, smooth, band,
                    group_by) -> str:
    tags = {RUN_TYPE_TAG: COMPARISON, "compare.selection": sel.describe(),
            "compare.runs": n_runs, "mlflow.note.content": result.markdown[:NOTE_CHARS]}
    logger = tracking.RunLogger.start(
        uri, sel.experiment, f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}", tags=tags)
    with ended_run(logger):
        logger.log_params({"target_loss": target_loss, "target_metric": target_metric,
                           "smooth": smooth, "band": band, "group_by": ",".join(group_by),
                           "sweep": sel.sweep or "", "dataset": sel.dataset or "",
                           "model": sel.model or "", "optimizers": ",".join(sel.optimizers),
                           "filter": sel.filter or ""})
        logger.log_artifacts([result.csv_path, result.markdown_path])
        if result.plots:
            logger.log_artifacts(result.plots, "plots")
    return logger.run_id


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + error
        refuse(f"{message} (see --help)", prefix="Error")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = _Parser(
        prog="python -m experiments.compare",
        description="Compare optimizers over MLflow runs: a table (also CSV and Markdown) "
                    "of mean ± std over seeds, and plots, logged to a comparison run.")
    sel = p.add_argument_group("which runs (all conditions together)")
    sel.add_argument("--experiment", default="optimizer-lab",
                     help="MLflow experiment name (default: %(default)s)")
    sel.add_argument("--sweep", help="a multirun folder as its runs' 'sweep' tag holds it "
                                     "(multirun/DATE/TIME), or 'latest'")
    sel.add_argument("--dataset", help="only runs on this dataset")
    sel.add_argument("--model", help="only runs of this model")
    sel.add_argument("--optimizers", help="comma-separated optimizer configs, e.g. "
                                          "adam,keras_adam")
    sel.add_argument("--filter", help="an MLflow search filter, e.g. "
                                      "\"params.`optimizer.learning_rate` = '0.01'\"")
    sel.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI, else "
                                   f"{tracking.DEFAULT_URI})")
    how = p.add_argument_group("what to compute")
    how.add_argument("--group-by", action="append", default=[], metavar="KEY",
                     help="also group by this tag or param (repeatable)")
    how.add_argument("--target-loss", type=float, default=0.5,
                     help="the loss whose first crossing is counted in steps (default 0.5)")
    how.add_argument("--target-metric", default="loss",
                     help="the metric compared with --target-loss (default: loss, per step)")
    how.add_argument("--smooth", type=int, default=10,
                     help="trailing-mean window over logged steps for step curves and the "
                          "target crossing; 1: none (default 10)")
    how.add_argument("--band", choices=("minmax", "std"), default="minmax",
                     help="the band around the mean over seeds (default minmax)")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, help="folder for the CSV, Markdown and PNGs "
                                              "(default outputs/compare/DATE_TIME)")
    out.add_argument("--no-plots", action="store_true", help="write no PNGs")
    out.add_argument("--no-log", action="store_true",
                     help="don't log a comparison run to MLflow")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    optimizers = [o.strip() for o in (args.optimizers or "").split(",") if o.strip()]
    sel = Selection(args.experiment, args.sweep, args.dataset, args.model, optimizers,
                    args.filter)
    say = lambda msg: print(msg, file=sys.stderr)
    try:
        with refusing():
            result = compare(sel, uri=args.uri, out_dir=args.out, target_loss=args.target_loss,
                             target_metric=args.target_metric, smooth=args.smooth,
                             band=args.band, group_by=args.group_by, plots=not args.no_plots,
                             log_run=not args.no_log, progress=say)
    except KeyboardInterrupt:
        say("Interrupted.")
        return 130
    except Exception as err:  # the store unreachable, a broken database, ...
        first = (str(err).strip().splitlines() or [""])[0]
        say(f"Error: {type(err).__name__}: {tracking.redact(first[:500])}")
        return EXIT_FAILED
    print(result.table)
    for note in result.notes:
        say(f"Note: {note}")
    print(f"\nWrote {result.csv_path}, {result.markdown_path.name} and "
          f"{len(result.plots)} plots in {result.csv_path.parent}")
    if result.run_id:
        uri = tracking.resolve_tracking_uri(args.uri)
        print(f"Logged comparison run {result.run_id} to experiment '{sel.experiment}'. "
              f"{tracking.see_it(uri, run_id=result.run_id, experiment_only=True)}")
    return 0

