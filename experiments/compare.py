"""``python -m experiments.compare``: compare optimizers over the runs of a sweep.

    python -m experiments.compare --sweep latest             # the newest multirun
    python -m experiments.compare --experiment optimizer-lab --dataset digits \
        --optimizers adam,keras_adam --target-loss 0.3
    python -m experiments.compare --filter "metrics.test_accuracy > 0.9"

Runs are selected with MLflow's search API (``MlflowClient.search_runs`` and
``get_metric_history``), never by reading the store's database, so any tracking server
works. Finished runs are grouped per optimizer (and per dataset/model when the selection
holds several, or per ``--group-by`` keys) and summarised over their seeds: mean, standard
deviation and count of the final and best validation loss and accuracy, the test accuracy,
the steps until the training loss first reaches a target, and the time per epoch. Each
lecture optimizer stands beside its Keras counterpart with the difference (custom − keras).

The table is printed and written as CSV and Markdown next to PNG plots (loss per step and
per epoch, gradient norm, effective learning rate; mean over seeds with a band), which are
also logged to a new MLflow run tagged ``run_type=comparison`` in the same experiment.
Comparison runs are never selected themselves.

A plain argparse command rather than a Hydra app: MLflow filter strings are full of quotes,
``=`` and spaces, which Hydra's override grammar would make the user escape.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from experiments import markdown, registry, tracking
from experiments.cli import EXIT_FAILED, refuse
from experiments.plotting import pyplot, rule_style
from experiments.run_status import ended_run

RUN_TYPE_TAG = "run_type"
COMPARISON = "comparison"
HISTORY_THREADS = 8
NOTE_CHARS = 7900  # the run description (a tag: MLflow keeps 8000 characters)
# Params that differ between the seeds of one configuration without making it another one.
SEED_PARAMS = ("trainer.seed", "tracking.", "hydra.")


class CompareError(Exception):
    """Bad input or an empty selection, refused before anything is written: one line for
    the user and exit code 2 (``experiments.cli.refuse``), no traceback."""


# ---------------------------------------------------------------------------- selection


@dataclass
class Selection:
    """What to compare: an experiment and conditions that are ANDed together."""

    experiment: str = "optimizer-lab"
    sweep: str | None = None
    dataset: str | None = None
    model: str | None = None
    optimizers: Sequence[str] = ()
    filter: str | None = None

    def describe(self) -> str:
        parts = [f"experiment '{self.experiment}'"]
        for key in ("sweep", "dataset", "model", "filter"):
            if getattr(self, key):
                parts.append(f"{key} {getattr(self, key)!r}")
        if self.optimizers:
            parts.append("optimizers " + ",".join(self.optimizers))
        return ", ".join(parts)


def _quote(value: str) -> str:
    if "'" in value and '"' in value:
        raise CompareError(f"cannot search for a value with both kinds of quotes: {value}")
    return f'"{value}"' if "'" in value else f"'{value}'"


def filter_strings(sel: Selection, sweep_values: Sequence[str] = ()) -> list[str]:
    """The MLflow filter strings whose union is the selection (MLflow has no OR, and no IN
    for tags, so several optimizers or spellings of a sweep folder are several searches)."""
    base = [f"tags.{key} = {_quote(value)}" for key, value in
            (("dataset", sel.dataset), ("model", sel.model)) if value]
    if sel.filter:
        base.append(sel.filter.strip())
    alternatives: list[list[str]] = [[]]
    for key, values in (("sweep", sweep_values), ("optimizer", sel.optimizers)):
        if values:
            alternatives = [a + [f"tags.{key} = {_quote(v)}"] for a in alternatives
                            for v in values]
    return [" and ".join(base + a) for a in alternatives]


def _search(client, experiment_id: str, filter_string: str, shown: str | None = None,
            **kwargs) -> list:
    from mlflow.exceptions import MlflowException

    runs, token = [], None
    while True:
        try:
            page = client.search_runs([experiment_id], filter_string, page_token=token,
                                      **kwargs)
        except MlflowException as err:
            message = str(err.message if hasattr(err, "message") else err).splitlines()[0]
            raise CompareError(f"invalid filter {shown or filter_string!r}: {message}") \
                from None
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _is_comparison(run) -> bool:
    return run.data.tags.get(RUN_TYPE_TAG) == COMPARISON


def sweep_spellings(sweep: str) -> list[str]:
    """A sweep folder as the ``sweep`` tag may hold it: as given, relative to the current
    folder or the project root, and absolute; without a trailing slash."""
    given = sweep.rstrip("/") or sweep
    out = [given]
    path = Path(given)
    absolute = path if path.is_absolute() else Path.cwd() / path
    for base in (Path.cwd(), tracking.PROJECT_ROOT):
        try:
            out.append(absolute.resolve().relative_to(base.resolve()).as_posix())
        except ValueError:
            pass
    out.append(str(absolute.resolve()))
    return list(dict.fromkeys(out))


def latest_sweep(client, experiment_id: str) -> str:
    """The ``sweep`` tag of the newest run in the experiment that belongs to a sweep."""
    token = None
    while True:
        page = client.search_runs([experiment_id], "tags.sweep LIKE '%'", max_results=200,
                                  order_by=["attributes.start_time DESC"], page_token=token)
        for run in page:
            if not _is_comparison(run):
                return run.data.tags["sweep"]
        token = page.token
        if not token:
            raise CompareError("no run in this experiment belongs to a sweep (runs of "
                               "`python -m experiments.train -m ...` do)")


def select_runs(client, sel: Selection) -> tuple[list, int]:
    """The selected runs (newest first, comparison runs left out) and how many comparison
    runs matched and were left out."""
    experiment = client.get_experiment_by_name(sel.experiment)
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments())
        raise CompareError(f"no experiment named '{sel.experiment}' in the store; it has: "
                           + (", ".join(names) or "none"))
    sweeps: Sequence[str] = ()
    if sel.sweep == "latest":
        sel.sweep = latest_sweep(client, experiment.experiment_id)
        sweeps = [sel.sweep]
    elif sel.sweep:
        sweeps = sweep_spellings(sel.sweep)
    found: dict[str, object] = {}
    for f in filter_strings(sel, sweeps):
        for run in _search(client, experiment.experiment_id, f, shown=sel.filter,
                           order_by=["attributes.start_time DESC"]):
            found.setdefault(run.info.run_id, run)
    runs = [r for r in found.values() if not _is_comparison(r)]
    skipped = len(found) - len(runs)
    if not runs:
        extra = f" ({skipped} comparison runs left out)" if skipped else ""
        raise CompareError(f"no runs match {sel.describe()}{extra}")
    return runs, skipped


# ------------------------------------------------------------------------------ metrics


@dataclass(frozen=True)
class Column:
    """One summary column: how to get one number per run, and how to print it."""

    key: str
    title: str
    digits: int
    needs: str  # the MLflow metric it is computed from


def columns(target_metric: str, target: float) -> list[Column]:
    return [
        Column("final_val_loss", "val loss (final)", 4, "val_loss"),
        Column("best_val_loss", "val loss (best)", 4, "val_loss"),
        Column("final_val_accuracy", "val acc (final)", 4, "val_accuracy"),
        Column("best_val_accuracy", "val acc (best)", 4, "val_accuracy"),
        Column("test_accuracy", "test acc", 4, "test_accuracy"),
        Column("steps_to_target", f"steps to {target_metric}≤{target:g}", 0, target_metric),
        Column("epoch_time_s", "epoch time s", 3, "epoch_time_s"),
    ]


STEP_CURVES = ("loss", "grad_norm", "effective_lr/mean")
EPOCH_CURVES = ("epoch_loss", "val_loss", "val_accuracy")


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each point (fewer at the start)."""
    if window <= 1 or len(values) == 0:
        return np.asarray(values, dtype=float)
    cumsum = np.cumsum(np.insert(np.asarray(values, dtype=float), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[lo]) / (idx - lo)


def first_step_at_or_below(steps: np.ndarray, values: np.ndarray, target: float) -> float:
    hit = np.nonzero(values <= target)[0]
    return float(steps[hit[0]]) if len(hit) else math.nan


@dataclass
class RunSummary:
    run_id: str
    name: str
    status: str
    tags: dict
    params: dict
    values: dict = field(default_factory=dict)      # column key -> number (nan: not reached)
    missing: set = field(default_factory=set)       # MLflow metric names the run lacks
    curves: dict = field(default_factory=dict)      # metric -> (steps, values)

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"

    @property
    def seed(self) -> str:
        return self.tags.get("seed", self.params.get("trainer.seed", "?"))


def _history(client, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return (np.array([p.step for p in points], dtype=float),
            np.array([p.value for p in points], dtype=float))


def summarize_run(client, run, target_metric: str, target: float, smooth: int) -> RunSummary:
    """One run's numbers for the table and its curves for the plots."""
    s = RunSummary(run.info.run_id, run.info.run_name or run.info.run_id, run.info.status,
                   dict(run.data.tags), dict(run.data.params))
    logged = run.data.metrics
    wanted = set(STEP_CURVES + EPOCH_CURVES) | {target_metric, "val_loss", "val_accuracy",
                                                "epoch_time_s", "test_accuracy"}
    s.missing = {k for k in wanted if k not in logged}
    h = {k: _history(client, run.info.run_id, k) for k in sorted(wanted - s.missing)}
    if "val_loss" in h:
        s.values["final_val_loss"] = h["val_loss"][1][-1]
        s.values["best_val_loss"] = np.min(h["val_loss"][1])
    if "val_accuracy" in h:
        s.values["final_val_accuracy"] = h["val_accuracy"][1][-1]
        s.values["best_val_accuracy"] = np.max(h["val_accuracy"][1])
    if "test_accuracy" in h:
        s.values["test_accuracy"] = h["test_accuracy"][1][-1]
    if "epoch_time_s" in h:
        s.values["epoch_time_s"] = float(np.median(h["epoch_time_s"][1]))
    if target_metric in h:
        steps, values = h[target_metric]
        s.values["steps_to_target"] = first_step_at_or_below(
            steps, trailing_mean(values, smooth), target)
    for key in STEP_CURVES:
        if key in h:
            s.curves[key] = (h[key][0], trailing_mean(h[key][1], smooth))
    for key in EPOCH_CURVES:
        if key in h:  # x: the epoch number, 1.. (the logged step is the optimizer step)
            s.curves[key] = (np.arange(1, len(h[key][1]) + 1, dtype=float), h[key][1])
    s.values = {k: float(v) for k, v in s.values.items()}
    return s


# ------------------------------------------------------------------------------- groups


def _identity(summary: RunSummary) -> tuple[str, bool]:
    """(rule, is the Keras twin) of a run, from its ``optimizer_rule`` and
    ``implementation`` tags (a run without them counts as a custom optimizer)."""
    rule = summary.tags.get("optimizer_rule") or summary.tags.get("optimizer", "")
    return rule, summary.tags.get("implementation") == "keras"


def _rule_rank(identity: tuple[str, bool]) -> tuple:
    """Sort key: the registry's order of rules (unknown ones last), custom before Keras."""
    order = registry.rule_names()
    rule, keras = identity
    return order.index(rule) if rule in order else len(order), rule, keras


def _lookup(summary: RunSummary, key: str) -> str:
    return summary.tags.get(key, summary.params.get(key, "–"))


def group_keys(summaries: Sequence[RunSummary], extra: Sequence[str]) -> list[str]:
    """``optimizer``, then dataset and model where the selection holds several, then
    ``extra`` (tags or params)."""
    keys = ["optimizer"]
    for key in ("dataset", "model"):
        if len({_lookup(s, key) for s in summaries}) > 1:
            keys.append(key)
    return keys + [k for k in extra if k not in keys]


@dataclass
class Stat:
    mean: float = math.nan
    std: float = math.nan
    n: int = 0


def stat(values: Iterable[float]) -> Stat:
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return Stat()
    return Stat(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v))


@dataclass
class Row:
    """A table row: one group of runs, or the difference between a pair of groups."""

    kind: str  # "optimizer" or "difference"
    label: dict  # group key -> value
    runs: int
    unfinished: int  # runs not FINISHED (failed, killed, still running)
    stats: dict  # column key -> Stat
    reached: str = ""


def _group_row(key: tuple, keys: Sequence[str], members: Sequence[RunSummary],
               cols: Sequence[Column]) -> Row:
    done = [m for m in members if m.finished]
    stats = {c.key: stat(m.values.get(c.key, math.nan) for m in done) for c in cols}
    have_target = [m for m in done if "steps_to_target" in m.values]
    reached = sum(not math.isnan(m.values["steps_to_target"]) for m in have_target)
    return Row("optimizer", dict(zip(keys, key)), len(done), len(members) - len(done), stats,
               f"{reached}/{len(have_target)}")


def _difference_row(custom: Row, keras: Row, members_c, members_k, cols) -> Row:
    """custom − keras: difference of the means; the spread is that of the differences
    between runs with the same seed, where at least two seeds are in both."""
    by_seed_c = {m.seed: m for m in members_c if m.finished}
    by_seed_k = {m.seed: m for m in members_k if m.finished}
    common = sorted(set(by_seed_c) & set(by_seed_k))
    stats = {}
    for c in cols:
        a, b = custom.stats[c.key], keras.stats[c.key]
        paired = stat(by_seed_c[s].values.get(c.key, math.nan)
                      - by_seed_k[s].values.get(c.key, math.nan) for s in common)
        stats[c.key] = Stat(a.mean - b.mean, paired.std, paired.n or min(a.n, b.n))
    label = dict(custom.label, optimizer=f"{custom.label['optimizer']} − "
                                         f"{keras.label['optimizer']}")
    return Row("difference", label, len(common), 0, stats)


def group_runs(summaries: Iterable[RunSummary], keys: Sequence[str]
               ) -> dict[tuple, list[RunSummary]]:
    groups: dict[tuple, list[RunSummary]] = {}
    for s in summaries:
        groups.setdefault(tuple(_lookup(s, k) for k in keys), []).append(s)
    return groups


def build_rows(summaries: Sequence[RunSummary], keys: Sequence[str],
               cols: Sequence[Column]) -> list[Row]:
    groups = group_runs(summaries, keys)
    identity = {g: _identity(members[0]) for g, members in groups.items()}
    order = sorted(groups, key=lambda g: (g[1:], _rule_rank(identity[g])))
    keras_twins = {(identity[g][0], g[1:]): g for g in groups if identity[g][1]}
    rows, done = [], set()
    for g in order:
        if g in done:
            continue
        done.add(g)
        row = _group_row(g, keys, groups[g], cols)
        rows.append(row)
        twin = keras_twins.get((identity[g][0], g[1:]))
        if not identity[g][1] and twin is not None:
            done.add(twin)
            keras_row = _group_row(twin, keys, groups[twin], cols)
            rows += [keras_row, _difference_row(row, keras_row, groups[g], groups[twin], cols)]
    return rows


def varying_params(summaries: Sequence[RunSummary], keys: Sequence[str]) -> dict[str, list]:
    """Params (not seeds or tracking settings) whose values differ inside one group:
    such a group mixes configurations, not just seeds."""
    out: dict[str, set] = {}
    for members in group_runs(summaries, keys).values():
        names = set().union(*(m.params for m in members))
        for name in names:
            if name in keys or name.startswith(SEED_PARAMS):
                continue
            values = {m.params.get(name, "–") for m in members}
            if len(values) > 1:
                out.setdefault(name, set()).update(values)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _non_adaptive(s: RunSummary) -> bool:
    """A rule that is not adaptive (SGD, momentum, ...) logs no effective learning rate."""
    rule = _identity(s)[0]
    return rule in registry.rule_names() and not registry.rule(rule).adaptive


def missing_messages(summaries: Sequence[RunSummary], cols: Sequence[Column]) -> list[str]:
    """One line per metric that some finished runs lack."""
    done = [s for s in summaries if s.finished]
    needed = {c.needs: [x.title for x in cols if x.needs == c.needs] for c in cols}
    lines = []
    for metric in sorted(set(needed) | set(STEP_CURVES) | set(EPOCH_CURVES)):
        lacking = [s for s in done if metric in s.missing
                   and not (metric == "effective_lr/mean" and _non_adaptive(s))]
        if not lacking:
            continue
        what = (", ".join(needed[metric]) if metric in needed else "plots only")
        names = ", ".join(s.name for s in lacking[:4]) + (" ..." if len(lacking) > 4 else "")
        lines.append(f"metric '{metric}' is missing in {len(lacking)} of {len(done)} finished "
                     f"runs ({names}); left out of: {what}")
    return lines


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


# -------------------------------------------------------------------------------- plots


def aggregate(curves: Sequence[tuple[np.ndarray, np.ndarray]], band: str):
    """Mean over runs at each x any of them has, and the band: min–max or mean ± std."""
    xs = np.unique(np.concatenate([c[0] for c in curves]))
    grid = np.full((len(curves), len(xs)), np.nan)
    for i, (x, y) in enumerate(curves):
        grid[i, np.searchsorted(xs, x)] = y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(grid, axis=0)
        if band == "std":
            std = np.nan_to_num(np.nanstd(grid, axis=0))
            return xs, mean, mean - std, mean + std
        return xs, mean, np.nanmin(grid, axis=0), np.nanmax(grid, axis=0)


@dataclass(frozen=True)
class Panel:
    metric: str
    ylabel: str
    log: bool = True


PLOTS = {
    "loss_step.png": ("Training loss per step", "optimizer step",
                      [Panel("loss", "cross-entropy (mini-batch)")]),
    "loss_epoch.png": ("Loss and accuracy per epoch", "epoch",
                       [Panel("epoch_loss", "training loss"), Panel("val_loss", "validation loss"),
                        Panel("val_accuracy", "validation accuracy", log=False)]),
    "grad_norm.png": ("Global gradient norm", "optimizer step",
                      [Panel("grad_norm", "‖g‖ (before clipping)")]),
    "effective_lr.png": ("Effective learning rate lr/(δ+√r), mean over weights",
                         "optimizer step", [Panel("effective_lr/mean", "effective learning rate")]),
}


def make_plots(summaries: Sequence[RunSummary], keys: Sequence[str], out: Path, band: str,
               smooth: int, subtitle: str) -> tuple[list[Path], list[str]]:
    """The PNGs written, and a line for each plot that had no data."""
    plt = pyplot()
    ordered = sorted((s for s in summaries if s.finished),
                     key=lambda s: (tuple(_lookup(s, k) for k in keys[1:]),
                                    _rule_rank(_identity(s))))
    groups = {" ".join(g): members for g, members in group_runs(ordered, keys).items()}
    written, skipped = [], []
    band_text = "min–max" if band == "minmax" else "± std"
    for filename, (title, xlabel, panels) in PLOTS.items():
        if not any(p.metric in s.curves for p in panels for m in groups.values() for s in m):
            skipped.append(f"no run has '{panels[0].metric}': {filename} not drawn")
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.6), dpi=100,
                                 squeeze=False)
        for ax, panel in zip(axes[0], panels):
            for label, members in groups.items():
                curves = [m.curves[panel.metric] for m in members if panel.metric in m.curves]
                if not curves:
                    continue
                x, mean, lo, hi = aggregate(curves, band)
                style = {**rule_style(*_identity(members[0])), "linewidth": 1.2}
                ax.plot(x, mean, label=f"{label} (n={len(curves)})", **style)
                ax.fill_between(x, lo, hi, color=style["color"], alpha=0.12, lw=0)
            if panel.log:
                ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(panel.ylabel)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, ncol=2 if len(groups) > 6 else 1)
        smoothing = f"; {smooth}-point trailing mean" if smooth > 1 and xlabel != "epoch" else ""
        fig.suptitle("\n".join([title, textwrap.fill(
            f"{subtitle}; mean over seeds, band {band_text}{smoothing}", 72 * len(panels))]),
            fontsize=10)
        fig.tight_layout()
        path = out / filename
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written, skipped


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
        result = compare(sel, uri=args.uri, out_dir=args.out, target_loss=args.target_loss,
                         target_metric=args.target_metric, smooth=args.smooth, band=args.band,
                         group_by=args.group_by, plots=not args.no_plots,
                         log_run=not args.no_log, progress=say)
    except CompareError as err:
        refuse(str(err), prefix="Error")
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
              f"See it with: {tracking.ui_command(uri)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
