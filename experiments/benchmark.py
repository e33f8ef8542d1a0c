"""``python -m experiments.benchmark``: which optimizer differences survive fair tuning.

An AlgoPerf-style protocol (``docs/benchmark-protocol.md``) over the workloads of
``conf/workload/`` and every optimizer of the rule registry (each rule and its Keras twin):

    python -m experiments.benchmark                      # preset=default: tuned + defaults
    python -m experiments.benchmark preset=smoke         # a few minutes
    python -m experiments.benchmark mode=calibrate       # set the workloads' targets
    python -m experiments.benchmark preset=full hydra/launcher=slurm ...   # see the README

Modes: ``benchmark`` (both rulesets), ``tuned`` (K quasi-random trials per study from the
rule's search space, S studies), ``defaults`` (each optimizer at its defaults, S seeds),
``calibrate`` (targets from the reference optimizers). Every trial is an MLflow run in the
experiment ``benchmark`` tagged with the benchmark id; a rerun with the same id skips the
trials already FINISHED there. The trial table is scored by ``experiments.scoring`` and
reported by ``experiments.benchmark_report``; both only read tables.

This module imports TensorFlow only inside :func:`run_trial`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WORKLOAD_DIR = PROJECT_ROOT / "conf" / "workload"
MODES = ("benchmark", "tuned", "defaults", "calibrate")
RULESETS = ("tuned", "defaults")
#: validation metric -> True when higher is better
METRICS = {"val_accuracy": True, "val_loss": False, "val_model_loss": False}
EXPERIMENT = "benchmark"


class BenchmarkError(ValueError):
    """A bad benchmark config: one line naming the value and the valid ones."""


# ---------------------------------------------------------------------------- workloads
@dataclass
class Workload:
    """One ``conf/workload/<name>.yaml``: model, data, batch size, budget, metric, target."""

    name: str
    description: str
    dataset: dict
    model: dict
    batch_size: int
    steps: int
    metric: str
    target: float | None
    target_provenance: str = ""
    path: Path | None = None

    @property
    def maximize(self) -> bool:
        return METRICS[self.metric]

    def reached(self, value: float) -> bool:
        if self.target is None or not math.isfinite(value):
            return False
        return value >= self.target if self.maximize else value <= self.target

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is better than ``b`` (NaN is worse than anything)."""
        if not math.isfinite(a):
            return False
        if not math.isfinite(b):
            return True
        return a > b if self.maximize else a < b

    def spec(self) -> dict:
        """What defines the workload's trials (the resume key includes it)."""
        return {"dataset": self.dataset, "model": self.model, "batch_size": self.batch_size,
                "steps": self.steps, "metric": self.metric, "target": self.target}


def workload_names(folder: Path = WORKLOAD_DIR) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in folder.glob("*.yaml")))


def load_workload(name: str, folder: Path = WORKLOAD_DIR) -> Workload:
    """``conf/workload/<name>.yaml`` checked; ``BenchmarkError`` naming the valid ones."""
    from omegaconf import OmegaConf

    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise BenchmarkError(f"workload {name!r} does not exist: choose from "
                             f"{', '.join(workload_names(folder))}")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    keys = {"description", "dataset", "model", "batch_size", "steps", "metric", "target",
            "target_provenance"}
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise BenchmarkError(f"{path.name}: unknown key(s) {', '.join(unknown)}; valid keys: "
                             f"{', '.join(sorted(keys))}")
    if raw.get("metric") not in METRICS:
        raise BenchmarkError(f"{path.name}: metric={raw.get('metric')!r} is not valid: choose "
                             f"one of {', '.join(METRICS)}")
    for key in ("batch_size", "steps"):
        if not isinstance(raw.get(key), int) or raw[key] < 1:
            raise BenchmarkError(f"{path.name}: {key}={raw.get(key)!r} must be an integer >= 1")
    target = raw.get("target")
    return Workload(name=name, description=raw.get("description", ""),
                    dataset=dict(raw["dataset"]), model=dict(raw["model"]),
                    batch_size=raw["batch_size"], steps=raw["steps"], metric=raw["metric"],
                    target=None if target is None else float(target),
                    target_provenance=raw.get("target_provenance") or "", path=path)


def write_target(workload: Workload, target: float, provenance: str) -> None:
    """Replace the ``target:`` and ``target_provenance:`` lines of the workload's YAML."""
    text = workload.path.read_text()
    text, n1 = re.subn(r"(?m)^target:.*$", f"target: {target:.6g}", text)
    text, n2 = re.subn(r"(?m)^target_provenance:.*$",
                       f"target_provenance: {json.dumps(provenance)}", text)
    if not (n1 and n2):
        raise BenchmarkError(f"{workload.path.name} has no 'target:' and "
                             "'target_provenance:' lines to write the target into")
    workload.path.write_text(text)


# ---------------------------------------------------------------------------- optimizers
@dataclass(frozen=True)
class Optimizer:
    """A ``conf/optimizer`` option: a rule of the registry, ours or its Keras twin."""

    name: str
    rule: Any  # custom_optimizers.rules.Rule
    implementation: str  # "custom" | "keras"

    @property
    def exact_twin(self) -> bool:
        """The Keras twin computes the same numbers at the rule's defaults (a twin whose
        ``fixed`` values differ from the defaults, as NAdam's ψ, runs other maths)."""
        twin = self.rule.keras
        if twin is None or not twin.exact:
            return False
        defaults = self.rule.defaults()
        return all(defaults.get(k, v) == v for k, v in twin.fixed.items())

    def defaults(self) -> dict:
        """The rule's default hyperparameters, with the Keras twin's ``fixed`` ones."""
        hp = self.rule.defaults()
        if self.implementation == "keras":
            hp.update(self.rule.keras.fixed)
        return hp


def all_optimizers() -> list[Optimizer]:
    """Every rule of the registry, each followed by its Keras twin (when it has one)."""
    from experiments import registry

    out = []
    for rule in registry.rules():
        out.append(Optimizer(rule.name, rule, "custom"))
        if rule.keras is not None:
            out.append(Optimizer(f"keras_{rule.name}", rule, "keras"))
    return out


def select_optimizers(names: Sequence[str] | None) -> list[Optimizer]:
    known = all_optimizers()
    if not names:
        return known
    by_name = {o.name: o for o in known}
    bad = [n for n in names if n not in by_name]
    if bad:
        raise BenchmarkError(f"optimizers: {', '.join(map(repr, bad))} not known: choose from "
                             f"{', '.join(by_name)}")
    return [by_name[n] for n in names]


# ---------------------------------------------------------------------------- sampling
def to_value(u: float, dim) -> float:
    """Map ``u`` in [0, 1) onto a ``SearchDim`` (scale "log", "log1m" or "linear")."""
    lo, hi = float(dim.low), float(dim.high)
    if dim.scale == "linear":
        return lo + u * (hi - lo)
    x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    if dim.scale == "log1m":
        return 1.0 - x
    if dim.scale == "log":
        return x
    raise ValueError(f"unknown search scale {dim.scale!r}: use log, log1m or linear")


def sample(space: Mapping[str, Any], k: int, seed: int, study: int) -> list[dict]:
    """``k`` quasi-random points of ``space`` (a scrambled Halton sequence).

    Seeded with (seed, study) only, so a rule and its Keras twin get the same points, and
    so do rules whose spaces have as many dimensions.
    """
    from scipy.stats import qmc

    names = list(space)
    gen = qmc.Halton(d=len(names), scramble=True, seed=np.random.default_rng([seed, study]))
    points = gen.random(k)
    return [{n: to_value(float(u[i]), space[n]) for i, n in enumerate(names)} for u in points]


def trial_seed(seed: int, ruleset: str, study: int, trial: int) -> int:
    """The seed of the model's initialisation and the batch order of one trial."""
    tag = {"tuned": 1, "defaults": 2, "calibrate": 3, "calibrate_seeds": 4}[ruleset]
    return int(np.random.SeedSequence([seed, tag, study, trial]).generate_state(1)[0] % 2**31)


# ---------------------------------------------------------------------------- trials
@dataclass
class TrialSpec:
    workload: Workload
    optimizer: Optimizer
    ruleset: str
    study: int
    trial: int
    seed: int
    hp: dict  # the full hyperparameters the optimizer is built with
    sampled: tuple  # names of the hyperparameters that were sampled
    steps: int
    stop_at_target: bool

    def key(self) -> str:
        blob = json.dumps({"workload": self.workload.spec(), "optimizer": self.optimizer.name,
                           "ruleset": self.ruleset, "study": self.study, "trial": self.trial,
                           "seed": self.seed, "hp": self.hp, "steps": self.steps,
                           "stop_at_target": self.stop_at_target},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        return (f"{self.workload.name} {self.optimizer.name} {self.ruleset} "
                f"s{self.study}t{self.trial}")


def plan_trials(workloads: Sequence[Workload], optimizers: Sequence[Optimizer], ruleset: str,
                *, trials: int, studies: int, seed: int, budget: float = 1.0,
                stop_at_target: bool = True) -> list[TrialSpec]:
    """Every trial of one ruleset: workload-major, then optimizer, study, trial."""
    out = []
    for w in workloads:
        steps = max(1, int(round(w.steps * budget)))
        for o in optimizers:
            for s in range(studies):
                if ruleset == "defaults":
                    points = [{}]
                else:
                    points = sample(o.rule.search_space, trials, seed, s)
                for t, point in enumerate(points):
                    hp = {**o.defaults(), **point}
                    out.append(TrialSpec(w, o, ruleset, s, t,
                                         trial_seed(seed, ruleset, s, t), hp,
                                         tuple(point), steps, stop_at_target))
    return out


class DataCache:
    """Each workload's splits, loaded once per process."""

    def __init__(self):
        self._splits: dict = {}

    def get(self, workload: Workload):
        key = json.dumps(workload.dataset, sort_keys=True)
        if key not in self._splits:
            import dataclasses

            from experiments.data import load_dataset

            params = dict(workload.dataset)
            splits = load_dataset(params.pop("name"), **params)
            # fit()'s final test evaluation is not used here: the validation arrays again
            # (same shape, so no second trace of the evaluation step)
            self._splits[key] = dataclasses.replace(
                splits, x_test=splits.x_val, y_test=splits.y_val)
        return self._splits[key]


def _value(workload: Workload, trainer, splits, metrics: Mapping[str, float] | None) -> float:
    """The workload's validation metric now (``metrics``: what fit() just measured)."""
    if workload.metric == "val_model_loss":
        trainer.model(splits.x_val, training=False)
        return float(sum(float(v) for v in trainer.model.losses))
    if metrics is None:
        loss, accuracy = trainer.evaluate(splits.x_val, splits.y_val)
        metrics = {"val_loss": loss, "val_accuracy": accuracy}
    return float(metrics[workload.metric])


def run_trial(spec: TrialSpec, data: DataCache) -> dict:
    """Train one trial; return its row (and its validation curve under ``curve``).

    The time counts from the model's construction (graph tracing included, as AlgoPerf
    counts compilation) to the evaluation that first reached the target.
    """
    import keras

    from experiments.models import build_model
    from experiments.optim import build_optimizer
    from experiments.trainer import Diverged, Interrupted, Trainer, fit

    w = spec.workload
    splits = data.get(w)
    keras.utils.set_random_seed(spec.seed)
    start = time.perf_counter()
    params = dict(w.model)
    model = build_model(params.pop("name"), splits.input_shape, splits.num_classes, **params)
    optimizer = build_optimizer({"name": spec.optimizer.rule.name,
                                 "implementation": spec.optimizer.implementation, **spec.hp})
    trainer = Trainer(model, optimizer, splits.x_train, splits.y_train)
    state = {"steps": None, "seconds": None, "best": math.nan, "stop": False}
    curve: list[tuple[int, float, float]] = []

    def record(step: int, value: float) -> None:
        seconds = time.perf_counter() - start
        curve.append((step, value, seconds))
        if w.better(value, state["best"]):
            state["best"] = value
        if state["steps"] is None and w.reached(value):
            state["steps"], state["seconds"] = step, seconds
            state["stop"] = spec.stop_at_target

    record(0, _value(w, trainer, splits, None))
    diverged = False
    steps_per_epoch = math.ceil(len(splits.x_train) / w.batch_size)
    try:
        fit(trainer, splits, epochs=math.ceil(spec.steps / steps_per_epoch),
            batch_size=w.batch_size, seed=spec.seed, steps_per_execution=64,
            max_steps=spec.steps, log_every_n_steps=spec.steps + 1,
            on_epoch=lambda epoch, step, m: record(step, _value(w, trainer, splits, m)),
            should_stop=lambda: state["stop"])
    except Interrupted:
        pass
    except Diverged:
        diverged = True
    seconds = time.perf_counter() - start
    last = curve[-1]
    return {
        "workload": w.name, "optimizer": spec.optimizer.name,
        "rule": spec.optimizer.rule.name, "implementation": spec.optimizer.implementation,
        "ruleset": spec.ruleset, "study": spec.study, "trial": spec.trial, "seed": spec.seed,
        "steps_to_target": state["steps"], "seconds_to_target": state["seconds"],
        "best_value": state["best"], "final_value": last[1], "diverged": diverged,
        "steps_run": int(optimizer.iterations.numpy()), "seconds": seconds,
        "metric": w.metric, "target": w.target, **spec.hp,
        "curve": {"step": [c[0] for c in curve], "value": [float(f"{c[1]:.6g}") for c in curve],
                  "seconds": [round(c[2], 3) for c in curve]},
    }


# ---------------------------------------------------------------------------- tracking
class TrialStore:
    """The MLflow side: one run per trial, and what a rerun with the same id may skip."""

    def __init__(self, uri: str | None, benchmark_id: str, experiment: str = EXPERIMENT):
        self.uri, self.benchmark_id, self.experiment = uri, benchmark_id, experiment

    @property
    def enabled(self) -> bool:
        return self.uri is not None

    def finished(self) -> dict[str, dict]:
        """trial key -> row, for every FINISHED trial run of this benchmark id."""
        if not self.enabled:
            return {}
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            return {}
        out, token = {}, None
        query = (f"tags.benchmark_id = '{self.benchmark_id}' and "
                 "tags.run_type = 'benchmark_trial' and attributes.status = 'FINISHED'")
        while True:
            page = client.search_runs([exp.experiment_id], query, max_results=1000,
                                      page_token=token)
            for run in page:
                result = run.data.tags.get("result")
                if result:
                    out[run.data.tags["trial_key"]] = json.loads(result)
            token = page.token
            if not token:
                return out

    def _experiment_id(self, client) -> str:
        if getattr(self, "_exp_id", None) is None:
            from experiments import tracking

            self._exp_id = tracking.get_or_create_experiment(client, self.uri, self.experiment)
        return self._exp_id

    def log(self, spec: TrialSpec, row: dict) -> None:
        """One FINISHED run for a finished trial, written in three calls (its tags, its
        params and metrics, its end), so tracking costs little per trial."""
        if not self.enabled:
            return
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        from experiments import tracking

        client = MlflowClient(tracking_uri=self.uri)
        end_ms = int(time.time() * 1000)
        start_ms = end_ms - int(row["seconds"] * 1000)
        tags = {"benchmark_id": self.benchmark_id, "run_type": "benchmark_trial",
                "trial_key": spec.key(), "workload": spec.workload.name,
                "optimizer": spec.optimizer.name, "optimizer_rule": spec.optimizer.rule.name,
                "implementation": spec.optimizer.implementation, "ruleset": spec.ruleset,
                "study": str(spec.study), "trial": str(spec.trial), "seed": str(spec.seed),
                "result": json.dumps(row, default=_json_default)}
        run = tracking.retrying(client.create_run, self._experiment_id(client),
                                 start_time=start_ms, tags=tags,
                                 run_name=f"{spec.optimizer.name}-{spec.workload.name}-"
                                          f"{spec.ruleset}-s{spec.study}t{spec.trial}")
        curve = row["curve"]
        metrics = []
        for step, value, seconds in zip(curve["step"], curve["value"], curve["seconds"]):
            ts = start_ms + int(seconds * 1000)
            metrics += [Metric(spec.workload.metric, value, ts, step),
                        Metric("seconds", seconds, ts, step)]
        final = {"best_value": row["best_value"], "diverged": float(row["diverged"]),
                 "steps_run": row["steps_run"], "steps_to_target": row["steps_to_target"],
                 "seconds_to_target": row["seconds_to_target"]}
        metrics += [Metric(k, float(v), end_ms, row["steps_run"]) for k, v in final.items()
                    if _finite(v)]
        params = [Param(k, str(v)) for k, v in spec.hp.items()]
        tracking.retrying(client.log_batch, run.info.run_id, metrics=metrics[:1000],
                           params=params)
        tracking.retrying(client.set_terminated, run.info.run_id, "FINISHED", end_ms)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(type(value).__name__)


# ---------------------------------------------------------------------------- running
def run_trials(specs: Sequence[TrialSpec], store: TrialStore, data: DataCache | None = None,
               out=sys.stderr, label: str = "benchmark") -> list[dict]:
    """Run ``specs`` in this process, skipping those already FINISHED in ``store``;
    progress (trial i/N, the last result, ETA) on ``out``. Returns the rows in the order
    of ``specs``."""
    from experiments.progress import Progress

    data = data or DataCache()
    done = store.finished()
    skipped = sum(1 for s in specs if s.key() in done)
    if skipped:
        print(f"Resuming benchmark {store.benchmark_id!r}: {skipped} of {len(specs)} trials "
              "already finished, skipped.", file=out)
    rows: list = [done.get(s.key()) for s in specs]
    # run in a seeded shuffled order, so that the ETA averages over every workload
    order = np.random.default_rng(len(specs)).permutation(len(specs))
    with Progress(len(specs), label, unit="trial", initial=skipped, stream=out) as bar:
        for i in order:
            if rows[i] is not None:
                continue
            spec = specs[i]
            row = run_trial(spec, data)
            store.log(spec, row)
            rows[i] = row
            outcome = ("diverged" if row["diverged"] else
                       f"target@{row['steps_to_target']}" if row["steps_to_target"]
                       is not None else f"best={row['best_value']:.4g}")
            bar.update(last=f"{spec.label()}: {outcome} ({row['seconds']:.1f}s)")
    return rows


def results_frame(rows: Sequence[dict]):
    """The trial table (``results.csv``): the documented columns first, then the rest."""
    import pandas as pd

    table = pd.DataFrame([{k: v for k, v in r.items() if k != "curve"} for r in rows])
    first = ["workload", "optimizer", "ruleset", "study", "trial", "steps_to_target",
             "seconds_to_target", "best_value", "diverged"]
    return table[first + [c for c in table.columns if c not in first]]


def curves_frame(rows: Sequence[dict]):
    """Every trial's validation curve, one row per evaluation (``curves.csv``)."""
    import pandas as pd

    parts = []
    for r in rows:
        c = r["curve"]
        parts.append(pd.DataFrame({"workload": r["workload"], "optimizer": r["optimizer"],
                                   "ruleset": r["ruleset"], "study": r["study"],
                                   "trial": r["trial"], "step": c["step"],
                                   "seconds": c["seconds"], "value": c["value"]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


# ---------------------------------------------------------------------------- the app
@dataclass
class Settings:
    """The checked config: what to run and where."""

    mode: str
    benchmark_id: str
    workloads: list
    optimizers: list
    preset: dict
    seed: int
    shard: tuple[int, int] | None
    output_dir: Path
    min_fraction: float
    bootstrap: int
    uri: str | None
    experiment: str
    overrides: list = field(default_factory=list)


def _shard(value) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise BenchmarkError(f"shard={value!r} is not valid: write i/n with 0 <= i < n, "
                             "e.g. shard=0/2")
    return int(m.group(1)), int(m.group(2))


def settings(cfg) -> Settings:
    """Check a composed ``conf/benchmark.yaml``; ``BenchmarkError`` with one line."""
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    if c["mode"] not in MODES:
        raise BenchmarkError(f"mode={c['mode']!r} is not valid: choose one of "
                             f"{', '.join(MODES)}")
    shard = _shard(c["shard"])
    preset = c["preset"]
    names = c["workloads"] or preset["workloads"]
    for key, value in (("preset.tuned.trials", preset["tuned"]["trials"]),
                       ("preset.tuned.studies", preset["tuned"]["studies"]),
                       ("preset.at_defaults.seeds", preset["at_defaults"]["seeds"]),
                       ("preset.calibrate.trials", preset["calibrate"]["trials"]),
                       ("preset.calibrate.seeds", preset["calibrate"]["seeds"])):
        if not isinstance(value, int) or value < 1:
            raise BenchmarkError(f"{key}={value!r} must be an integer >= 1")
    for key, value in (("preset.budget", preset["budget"]),
                       ("preset.calibrate.budget", preset["calibrate"]["budget"])):
        if not isinstance(value, (int, float)) or not 0 < value <= 10:
            raise BenchmarkError(f"{key}={value!r} must be a number in (0, 10]")
    fraction = c["scoring"]["min_fraction"]
    if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise BenchmarkError(f"scoring.min_fraction={fraction!r} must be in [0, 1]")
    folder = Path(c["workload_dir"]) if c.get("workload_dir") else WORKLOAD_DIR
    workloads = [load_workload(n, folder) for n in names]
    optimizers = select_optimizers(c["optimizers"])
    if c["mode"] == "calibrate":
        select_optimizers(preset["calibrate"]["references"])
    if c["mode"] in ("benchmark", "tuned", "defaults"):
        missing = [w.name for w in workloads if w.target is None]
        if missing:
            raise BenchmarkError(f"workload(s) {', '.join(missing)} have no target yet: run "
                                 "python -m experiments.benchmark mode=calibrate first")
    bid = c["benchmark_id"] or f"{preset['name']}-{c['mode']}"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", bid):
        raise BenchmarkError(f"benchmark_id={bid!r} is not valid: use letters, digits, "
                             "'.', '_' and '-'")
    uri = None
    if c["tracking"]["enabled"]:
        from experiments import tracking

        uri = tracking.resolve_tracking_uri(c["tracking"]["uri"])
    out = Path(c["output_dir"]) if c["output_dir"] else PROJECT_ROOT / "outputs" / "benchmark" / bid
    return Settings(c["mode"], bid, workloads, optimizers, preset, int(c["seed"]),
                    shard, out, float(fraction), int(c["scoring"]["bootstrap"]),
                    uri, c["tracking"]["experiment_name"])


def _apply_shard(specs: list, shard) -> list:
    if shard is None:
        return specs
    i, n = shard
    return specs[i::n]


def benchmark_specs(s: Settings) -> list[TrialSpec]:
    p = s.preset
    specs = []
    rulesets = RULESETS if s.mode == "benchmark" else (s.mode,)
    for ruleset in rulesets:
        trials, studies = ((p["tuned"]["trials"], p["tuned"]["studies"]) if ruleset == "tuned"
                           else (1, p["at_defaults"]["seeds"]))
        specs += plan_trials(s.workloads, s.optimizers, ruleset, trials=trials,
                             studies=studies, seed=s.seed, budget=p["budget"],
                             stop_at_target=p["stop_at_target"])
    return specs


def exact_pairs(optimizers: Sequence[Optimizer]) -> dict[str, str]:
    names = {o.name for o in optimizers}
    return {o.name: f"keras_{o.name}" for o in optimizers
            if o.implementation == "custom" and o.exact_twin and f"keras_{o.name}" in names}


def machine_line() -> str:
    import os
    import platform

    load = os.getloadavg()
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def run_benchmark(s: Settings, out=sys.stdout, err=sys.stderr) -> str | None:
    """Run (or resume) the trials, then score and report them; returns the leaderboard."""
    from datetime import datetime, timezone

    store = TrialStore(s.uri, s.benchmark_id, s.experiment)
    specs = benchmark_specs(s)
    started = time.time()
    rows = run_trials(_apply_shard(specs, s.shard), store, out=err)
    if s.shard is not None:
        print(f"Shard {s.shard[0]}/{s.shard[1]} of benchmark {s.benchmark_id!r} done "
              f"({len(rows)} trials). Score all shards with the same command without shard.",
              file=out)
        return None
    from experiments import benchmark_report

    results = results_frame(rows)
    p = s.preset
    header = (f"Benchmark `{s.benchmark_id}` ({p['name']} preset), "
              f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine_line()}; "
              f"{len(rows)} trials, K = {p['tuned']['trials']} trials x "
              f"{p['tuned']['studies']} studies (tuned), {p['at_defaults']['seeds']} seeds "
              f"(defaults), step budget x {p['budget']}; training time summed over the "
              f"trials {results['seconds'].sum() / 60:.1f} min (median trial "
              f"{results['seconds'].median():.1f} s), this process {time.time() - started:.0f} s."
              "\n")
    board, scores = benchmark_report.write_report(
        results, s.workloads, s.output_dir, exact_pairs=exact_pairs(s.optimizers), min_fraction=s.min_fraction,
        n_boot=s.bootstrap, seed=s.seed, header=header)
    curves_frame(rows).to_csv(s.output_dir / "curves.csv", index=False)
    if store.enabled:
        _log_summary(s, scores)
    print(board, file=out)
    print(f"Results in {s.output_dir}" + (f" and MLflow experiment '{s.experiment}'"
                                          if store.enabled else ""), file=out)
    return board


def _log_summary(s: Settings, scores) -> None:
    from experiments import run_status, tracking

    logger = tracking.RunLogger.start(s.uri, s.experiment, f"summary-{s.benchmark_id}",
                                      tags={"benchmark_id": s.benchmark_id,
                                            "run_type": "benchmark_summary"})
    with run_status.ended_run(logger):
        for (ruleset, optimizer), row in scores.iterrows():
            logger.log_metrics({f"{ruleset}/{optimizer}/{k}": v for k, v in row.items()
                                if _finite(v)}, 0)
        files = [s.output_dir / n for n in ("results.csv", "scores.csv", "leaderboard.md",
                                            "curves.csv", "budget_curves.csv",
                                            "twin_mismatches.csv")]
        logger.log_artifacts([f for f in files if f.exists()])
        logger.log_artifacts(sorted((s.output_dir / "plots").glob("*.png")), "plots")


def calibrate(s: Settings, command: str, out=sys.stdout, err=sys.stderr) -> dict[str, float]:
    """Set each workload's target from the reference optimizers (AlgoPerf's rule).

    Per workload: each reference is tuned with ``calibrate.trials`` quasi-random trials at
    ``calibrate.budget`` of the step budget, its best setting rerun with
    ``calibrate.seeds`` seeds; the target is the best of the references' medians of
    those seeds' best validation values. Written into the workload's YAML with provenance.
    """
    from datetime import datetime, timezone

    c = s.preset["calibrate"]
    refs = select_optimizers(c["references"])
    store = TrialStore(s.uri, s.benchmark_id, s.experiment)
    data = DataCache()
    targets = {}
    for w in s.workloads:
        free = Workload(**{**w.__dict__, "target": None})  # no target while calibrating
        search = plan_trials([free], refs, "calibrate", trials=c["trials"], studies=1,
                             seed=s.seed, budget=c["budget"], stop_at_target=False)
        rows = run_trials(search, store, data, out=err, label=f"calibrate {w.name} search")
        medians = {}
        for ref in refs:
            mine = [(spec, r) for spec, r in zip(search, rows) if r["optimizer"] == ref.name]
            best_spec, best_row = mine[0]
            for spec, r in mine[1:]:
                if free.better(r["best_value"], best_row["best_value"]):
                    best_spec, best_row = spec, r
            reruns = [TrialSpec(free, ref, "calibrate_seeds", k, 0,
                                trial_seed(s.seed, "calibrate_seeds", k, 0), best_spec.hp,
                                best_spec.sampled, best_spec.steps, False)
                      for k in range(c["seeds"])]
            seeds = run_trials(reruns, store, data, out=err,
                               label=f"calibrate {w.name} {ref.name} seeds")
            medians[ref.name] = float(np.median([r["best_value"] for r in seeds]))
        best = max(medians.values()) if w.maximize else min(medians.values())
        targets[w.name] = best
        provenance = (f"calibrated {datetime.now(timezone.utc):%Y-%m-%d} by `{command}`: "
                      f"{', '.join(r.name for r in refs)} tuned with {c['trials']} "
                      f"quasi-random trials at {c['budget']:g} x the step budget, best "
                      f"setting rerun with {c['seeds']} seeds; median best {w.metric}: "
                      + ", ".join(f"{k} {v:.4g}" for k, v in medians.items())
                      + "; target = the best of these")
        write_target(w, best, provenance)
        print(f"{w.name}: target {w.metric} {best:.4g} ("
              + ", ".join(f"{k} {v:.4g}" for k, v in medians.items()) + ")", file=out,
              flush=True)
    return targets


def main_entry(cfg) -> None:
    try:
        s = settings(cfg)
        if s.uri is not None:
            from experiments import tracking

            tracking.probe_store(s.uri)
    except (BenchmarkError, ValueError) as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # an unreachable tracking store
        from experiments import tracking

        if isinstance(e, tracking.TrackingUnavailable):
            print(f"Error: {e}", file=sys.stderr)
            sys.exit(2)
        raise
    if s.mode == "calibrate":
        from experiments.hydra_job import task_overrides

        command = "python -m experiments.benchmark " + " ".join(task_overrides())
        calibrate(s, command.strip())
    else:
        run_benchmark(s)


def _hydra_main():
    import hydra

    @hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
    def main(cfg) -> None:
        main_entry(cfg)

    main()


if __name__ == "__main__":
    _hydra_main()
