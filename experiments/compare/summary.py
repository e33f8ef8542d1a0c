"""One summary per run (final and best metrics, steps to a target, epoch time) and the
rows of the table: runs grouped per optimizer, seeds aggregated, each lecture rule beside
its Keras twin with the difference."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from experiments.core import registry

# Params that differ between the seeds of one configuration without making it another one.
SEED_PARAMS = ("trainer.seed", "tracking.", "hydra.")


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


def rule_identity(summary: RunSummary) -> tuple[str, bool]:
    """(rule, is the Keras twin) of a run, from its ``optimizer_rule`` and
    ``implementation`` tags (a run without them counts as a custom optimizer)."""
    rule = summary.tags.get("optimizer_rule") or summary.tags.get("optimizer", "")
    return rule, summary.tags.get("implementation") == "keras"


def rule_rank(identity: tuple[str, bool]) -> tuple:
    """Sort key: the registry's order of rules (unknown ones last), custom before Keras."""
    order = registry.rule_names()
    rule, keras = identity
    return order.index(rule) if rule in order else len(order), rule, keras


def tag_or_param(summary: RunSummary, key: str) -> str:
    return summary.tags.get(key, summary.params.get(key, "–"))


def group_keys(summaries: Sequence[RunSummary], extra: Sequence[str]) -> list[str]:
    """``optimizer``, then dataset and model where the selection holds several, then
    ``extra`` (tags or params)."""
    keys = ["optimizer"]
    for key in ("dataset", "model"):
        if len({tag_or_param(s, key) for s in summaries}) > 1:
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
        groups.setdefault(tuple(tag_or_param(s, k) for k in keys), []).append(s)
    return groups


def build_rows(summaries: Sequence[RunSummary], keys: Sequence[str],
               cols: Sequence[Column]) -> list[Row]:
    groups = group_runs(summaries, keys)
    identity = {g: rule_identity(members[0]) for g, members in groups.items()}
    order = sorted(groups, key=lambda g: (g[1:], rule_rank(identity[g])))
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
    rule = rule_identity(s)[0]
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
