"""Which runs a comparison reads: an experiment, a sweep and conditions ANDed together,
found with MLflow's search API; comparison runs themselves are left out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from experiments.core import tracking
from experiments.core.checks import Refusal

RUN_TYPE_TAG = "run_type"
COMPARISON = "comparison"


class CompareError(Refusal):
    """Bad input or an empty selection, refused before anything is written: one line for
    the user and exit code 2 (``experiments.core.cli.refuse``), no traceback."""


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
