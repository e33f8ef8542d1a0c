"""The benchmark's trials: what one trial is (``TrialSpec``, ``plan_trials``), the data,
initial weights and batches every way of running it shares, what it measured
(``Outcome``), and the reference way to run it: ``run_trial_with_trainer``, through
``experiments.train.trainer`` (the ``python -m experiments.train`` loop). The benchmark's own
way is ``experiments.benchmark.engine.Engine``; the tests check that both give the same
steps to target and best values. ``experiments.benchmark.pool`` runs many in processes.

Evaluation point: an optimizer that declares one (``capabilities.of(optimizer)
.evaluation_point(variables)``: one tensor per trainable variable, same order; e.g.
schedule-free methods, which evaluate at an average of their iterates) is evaluated with the weights set to those values, then set
back; the row records ``evaluated_at`` ("evaluation_point" or "weights").

Time: ``seconds`` counts the training steps only (the compiled chunks, synchronised);
evaluation time is ``eval_seconds``; building, tracing and the MLflow writes count in
neither (AlgoPerf keeps evaluation off the clock too).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from experiments.benchmark.search import sample, trial_seed
from experiments.benchmark.workloads import Optimizer, Workload, default_eval_every


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
    eval_every: int
    stop_at_target: bool

    def key(self) -> str:
        blob = json.dumps({"workload": self.workload.spec(), "optimizer": self.optimizer.name,
                           "ruleset": self.ruleset, "study": self.study, "trial": self.trial,
                           "seed": self.seed, "hp": self.hp, "steps": self.steps,
                           "eval_every": self.eval_every,
                           "stop_at_target": self.stop_at_target},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        return (f"{self.workload.name} {self.optimizer.name} {self.ruleset} "
                f"s{self.study}t{self.trial}")


def plan_trials(workloads: Sequence[Workload], optimizers: Sequence[Optimizer], ruleset: str,
                *, trials: int, studies: int, seed: int, budget: float = 1.0,
                eval_every: int | None = None, stop_at_target: bool = True,
                stream: str | None = None) -> list[TrialSpec]:
    """Every trial of one ruleset ("tuned", "defaults" or "calibrate"): workload-major,
    then optimizer, study, trial. Draws and seeds come from ``stream`` (default: the
    ruleset's own), fresh per (workload, study) and shared by the optimizers."""
    stream = stream or ruleset
    out = []
    for w in workloads:
        steps = max(1, int(round(w.steps * budget)))
        every = eval_every or default_eval_every(steps)
        for s in range(studies):
            seeds = [trial_seed(seed, stream, w.name, s, t) for t in range(trials)]
            for o in optimizers:
                points = ([{}] * trials if ruleset == "defaults"
                          else sample(o.search_space, trials, seed, w.name, s, stream))
                for t, point in enumerate(points):
                    out.append(TrialSpec(w, o, ruleset, s, t, seeds[t],
                                         {**o.defaults(), **point}, tuple(point), steps,
                                         every, stop_at_target))
    order = {(w.name, o.name): i for i, (w, o) in
             enumerate((w, o) for w in workloads for o in optimizers)}
    return sorted(out, key=lambda x: (order[(x.workload.name, x.optimizer.name)], x.study,
                                      x.trial))


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
            self._splits[key] = dataclasses.replace(
                splits, x_test=splits.x_val, y_test=splits.y_val)
        return self._splits[key]


_INITIAL: dict = {}


def forget_initial_weights() -> None:
    """Empty ``initial_weights``'s cache: the next trial of a seed builds its model again."""
    _INITIAL.clear()


def initial_weights(workload: Workload, input_shape, num_classes: int, seed: int) -> list:
    """The model's weights as ``build_model`` initialises them under ``seed`` (the same
    for every rule: cached per process)."""
    key = (json.dumps(workload.model, sort_keys=True), seed)
    if key not in _INITIAL:
        import keras

        from experiments.models import build_model

        keras.utils.set_random_seed(seed)
        params = dict(workload.model)
        model = build_model(params.pop("name"), input_shape, num_classes, **params)
        _INITIAL[key] = [v.numpy() for v in model.weights]
        if len(_INITIAL) > 512:
            _INITIAL.pop(next(iter(_INITIAL)))
    return _INITIAL[key]


def batch_indices(n: int, batch_size: int, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The trainer's batches (``Trainer.epoch_batches``: epoch by epoch, the last one of an
    epoch shorter) for ``steps`` steps, as a padded [steps, batch] matrix and the lengths."""
    from experiments.train.trainer import Trainer

    batches: list = []
    epoch = 0
    while len(batches) < steps:
        batches += Trainer.epoch_batches(None, n, batch_size, seed, epoch)
        epoch += 1
    batches = batches[:steps]
    idx = np.zeros((steps, batch_size), np.int32)
    lens = np.array([len(b) for b in batches], np.int32)
    for i, b in enumerate(batches):
        idx[i, :len(b)] = b
    return idx, lens


class Outcome:
    """What a trial measured while it ran: its evaluations and its time to target."""

    def __init__(self, workload: Workload, stop_at_target: bool):
        self.w, self.stop_at_target = workload, stop_at_target
        self.curve: list[tuple[int, float, float]] = []
        self.steps = self.seconds = None
        self.best = math.nan
        self.stop = False

    def record(self, step: int, value: float, seconds: float) -> None:
        if self.curve and self.curve[-1][0] == step:
            return
        self.curve.append((step, value, seconds))
        if self.w.better(value, self.best):
            self.best = value
        if self.steps is None and self.w.reached(value):
            self.steps, self.seconds = step, seconds
            self.stop = self.stop_at_target

    def row(self, spec: TrialSpec, *, diverged: bool, steps_run: int, seconds: float,
            eval_seconds: float, evaluated_at: str, path: str) -> dict:
        w = spec.workload
        return {
            "workload": w.name, "optimizer": spec.optimizer.name,
            "rule": spec.optimizer.rule.name, "implementation": spec.optimizer.implementation,
            "ruleset": spec.ruleset, "study": spec.study, "trial": spec.trial, "seed": spec.seed,
            "steps_to_target": self.steps, "seconds_to_target": self.seconds,
            "best_value": self.best, "final_value": self.curve[-1][1], "diverged": diverged,
            "steps_run": steps_run, "budget_steps": spec.steps, "eval_every": spec.eval_every,
            "seconds": seconds, "eval_seconds": eval_seconds, "evaluated_at": evaluated_at,
            "path": path, "metric": w.metric, "target": w.target, **spec.hp,
            "curve": {"step": [c[0] for c in self.curve],
                      "value": [float(f"{c[1]:.6g}") for c in self.curve],
                      "seconds": [round(c[2], 4) for c in self.curve]},
        }


def run_trial_with_trainer(spec: TrialSpec, data: DataCache) -> dict:
    """The same trial through ``experiments.train.trainer.fit`` (the reference for the tests):
    evaluations at the same steps, through the trainer's own evaluation."""
    import keras

    from custom_optimizers import capabilities
    from experiments.models import build_model
    from experiments.core.optim import build_optimizer
    from experiments.train.trainer import Diverged, Interrupted, Trainer, fit

    w = spec.workload
    splits = data.get(w)
    keras.utils.set_random_seed(spec.seed)
    params = dict(w.model)
    model = build_model(params.pop("name"), splits.input_shape, splits.num_classes, **params)
    optimizer = build_optimizer(spec.optimizer.config(spec.hp))
    trainer = Trainer(model, optimizer, splits.x_train, splits.y_train)
    out = Outcome(w, spec.stop_at_target)
    offers = capabilities.of(optimizer)
    point_of = offers.evaluation_point if offers.has_evaluation_point else None
    start = time.perf_counter()

    def value() -> float:
        variables = model.trainable_variables
        saved = None
        if point_of is not None:
            saved = [v.numpy() for v in variables]
            for v, p in zip(variables, point_of(variables)):
                v.assign(p)
        if w.metric == "excess_loss":
            layer = next(la for la in model.layers if hasattr(la, "excess_loss"))
            result = float(layer.excess_loss())
        elif w.metric == "val_model_loss":
            model(splits.x_val, training=False)
            result = float(sum(float(v) for v in model.losses))
        else:
            loss, accuracy = trainer.evaluate(splits.x_val, splits.y_val)
            result = float({"val_loss": loss, "val_accuracy": accuracy}[w.metric])
        if saved is not None:
            for v, s in zip(variables, saved):
                v.assign(s)
        return result

    def probe(step: int, final: bool) -> None:
        out.record(step, value(), time.perf_counter() - start)

    diverged = False
    steps_per_epoch = math.ceil(len(splits.x_train) / w.batch_size)
    try:
        fit(trainer, splits, epochs=math.ceil(spec.steps / steps_per_epoch),
            batch_size=w.batch_size, seed=spec.seed, steps_per_execution=64,
            max_steps=spec.steps, log_every_n_steps=spec.steps + 1, probe=probe,
            probe_every=spec.eval_every, should_stop=lambda: out.stop)
    except Interrupted:
        pass
    except Diverged:
        diverged = True
    seconds = time.perf_counter() - start
    return out.row(spec, diverged=diverged, steps_run=int(optimizer.iterations.numpy()),
                   seconds=seconds, eval_seconds=math.nan,
                   evaluated_at="evaluation_point" if point_of else "weights", path="trainer")
