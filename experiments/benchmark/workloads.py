"""The benchmark's workloads (``conf/workload/<name>.yaml``) and its optimizers (the rule
registry's rules and their Keras twins). No TensorFlow here."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from experiments.core import PROJECT_ROOT
from experiments.core.checks import ConfigError

WORKLOAD_DIR = PROJECT_ROOT / "conf" / "workload"
#: validation metric -> True when higher is better
METRICS = {"val_accuracy": True, "val_loss": False, "val_model_loss": False,
           "excess_loss": False}
#: evaluations per trial when the evaluation period is not given (period = budget / this)
EVALUATIONS = 40
#: the largest step budget and batch a workload may declare
MAX_STEPS, MAX_BATCH = 10_000_000, 1_000_000


class BenchmarkError(ConfigError):
    """A bad benchmark config: one line naming the value and the valid ones."""


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


def default_eval_every(steps: int) -> int:
    """The evaluation period when none is given: about ``steps / EVALUATIONS``."""
    return max(1, int(round(steps / EVALUATIONS)))


def workload_names(folder: Path = WORKLOAD_DIR) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in folder.glob("*.yaml")))


KEYS = {"description", "dataset", "model", "batch_size", "steps", "metric", "target",
        "target_provenance"}


def load_workload(name: str, folder: Path = WORKLOAD_DIR) -> Workload:
    """``conf/workload/<name>.yaml`` checked; ``BenchmarkError`` naming the valid ones.
    Only a plain name of a file in ``folder`` is a workload (no path: ``../x`` would read,
    and ``mode=calibrate`` write, outside it)."""
    from omegaconf import OmegaConf

    if not folder.is_dir():
        raise BenchmarkError(f"workload_dir={folder} is not a folder")
    names = workload_names(folder)
    if not isinstance(name, str) or name not in names:
        raise BenchmarkError(f"workload {name!r} does not exist: choose from "
                             f"{', '.join(names)}")
    path = folder / f"{name}.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise BenchmarkError(f"{path.name}: unknown key(s) {', '.join(unknown)}; valid keys: "
                             f"{', '.join(sorted(KEYS))}")
    if raw.get("metric") not in METRICS:
        raise BenchmarkError(f"{path.name}: metric={raw.get('metric')!r} is not valid: choose "
                             f"one of {', '.join(METRICS)}")
    for key, high in (("batch_size", MAX_BATCH), ("steps", MAX_STEPS)):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise BenchmarkError(f"{path.name}: {key}={value!r} must be an integer in "
                                 f"[1, {high}]")
    target = raw.get("target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                               or not math.isfinite(target)):
        raise BenchmarkError(f"{path.name}: target={target!r} must be a finite number, or "
                             "null before mode=calibrate sets it")
    return Workload(name=name, description=raw.get("description", ""),
                    dataset=dict(raw["dataset"]), model=dict(raw["model"]),
                    batch_size=raw["batch_size"], steps=raw["steps"], metric=raw["metric"],
                    target=None if target is None else float(target),
                    target_provenance=raw.get("target_provenance") or "", path=path)


def write_target(workload: Workload, target: float, provenance: str) -> None:
    """Replace the ``target:`` and ``target_provenance:`` lines of the workload's YAML
    (a file of its folder: ``load_workload`` takes plain names only). A target that is not
    finite (every reference diverged) is refused: the file would no longer load."""
    if not math.isfinite(target):
        raise BenchmarkError(f"{workload.name}: the calibration found no finite "
                             f"{workload.metric} (target={target}); the target is not written")
    text = workload.path.read_text()
    text, n1 = re.subn(r"(?m)^target:.*$", f"target: {target:.6g}", text)
    text, n2 = re.subn(r"(?m)^target_provenance:.*$",
                       f"target_provenance: {json.dumps(provenance)}", text)
    if not (n1 and n2):
        raise BenchmarkError(f"{workload.path.name} has no 'target:' and "
                             "'target_provenance:' lines to write the target into")
    from experiments.benchmark.files import write_text

    write_text(workload.path, text)  # replaced whole: a kill never leaves half a config


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

    @property
    def search_space(self) -> dict:
        """The rule's search space (its lab settings, ``conf/optimizer/lab/<rule>.yaml``)."""
        from experiments.core import registry

        return registry.lab(self.rule.name).search_space

    def defaults(self) -> dict:
        """The rule's default hyperparameters, with the Keras twin's ``fixed`` ones."""
        hp = self.rule.defaults()
        if self.implementation == "keras":
            hp.update(self.rule.keras.fixed)
        return hp

    def __reduce__(self):  # to a worker process by name (a rule holds functions)
        return (_optimizer, (self.name,))

    def config(self, hp: dict) -> dict:
        """The ``experiments.core.optim.build_optimizer`` config of this option at ``hp``."""
        return {"name": self.rule.name, "implementation": self.implementation, **hp}


def all_optimizers() -> list[Optimizer]:
    """Every rule of the registry, each followed by its Keras twin (when it has one)."""
    from experiments.core import registry

    out = []
    for rule in registry.rules():
        out.append(Optimizer(rule.name, rule, "custom"))
        if rule.keras is not None:
            out.append(Optimizer(f"keras_{rule.name}", rule, "keras"))
    return out


def _optimizer(name: str) -> Optimizer:
    return next(o for o in all_optimizers() if o.name == name)


#: What a preset's ``optimizers`` may name instead of a list.
OPTIMIZER_SETS = {
    "custom": "every rule of the registry, our implementation",
    "all": "every rule of the registry and its Keras twin",
    "exact_twins": "the rules whose Keras twin is exact, each with its twin",
}


def select_optimizers(names: Sequence[str] | str | None) -> list[Optimizer]:
    """A list of options and ``OPTIMIZER_SETS``, or one set (None: ``all``)."""
    known = all_optimizers()
    if isinstance(names, (list, tuple)) and set(names) & set(OPTIMIZER_SETS):
        chosen = {o.name for n in names
                  for o in (select_optimizers(n) if n in OPTIMIZER_SETS
                            else select_optimizers([n]))}
        return [o for o in known if o.name in chosen]
    if names is None or names == "all":
        return known
    if names == "custom":
        return [o for o in known if o.implementation == "custom"]
    if names == "exact_twins":
        exact = {o.rule.name for o in known if o.implementation == "custom" and o.exact_twin}
        return [o for o in known if o.rule.name in exact]
    if isinstance(names, str):
        raise BenchmarkError(f"optimizers={names!r} is not valid: give a list of options or "
                             f"one of {', '.join(OPTIMIZER_SETS)}")
    by_name = {o.name: o for o in known}
    bad = [n for n in names if n not in by_name]
    if bad:
        raise BenchmarkError(f"optimizers: {', '.join(map(repr, bad))} not known: choose from "
                             f"{', '.join(by_name)}")
    if not names:
        raise BenchmarkError("optimizers=[] is empty: name at least one option")
    return [by_name[n] for n in names]


def exact_pairs(optimizers: Sequence[Optimizer]) -> dict[str, str]:
    """``{"sgd": "keras_sgd", ...}`` for the exact twin pairs both of whose sides run."""
    names = {o.name for o in optimizers}
    return {o.name: f"keras_{o.name}" for o in optimizers
            if o.implementation == "custom" and o.exact_twin and f"keras_{o.name}" in names}
