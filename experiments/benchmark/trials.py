"""The benchmark's trials: what one trial is, and two ways to run it.

``Engine`` (the benchmark's path) keeps, per (workload, optimizer option) in a process,
one model, one optimizer and one traced training chunk and evaluation: the trials differ
by hyperparameters, initial weights and batch order, so the optimizer's numeric
hyperparameters become ``tf.Variable``\\ s that each trial assigns, and the weights and
the optimizer's slots are reset between trials. A trial then costs its training steps,
its evaluations (on the device, one call each) and a few assignments. Which attributes
are hyperparameters is found, for any rule of the registry, by building the optimizer at
two points of the search and comparing (``Engine._tunable``); an optimizer whose
hyperparameters cannot be variables (a value read by Python code while tracing, a slot
initialised from a hyperparameter, a value derived in ``__init__``) is rebuilt and its
step retraced for every trial instead: slower, never different.

``run_trial_with_trainer`` runs the same trial through ``experiments.trainer`` (the
``python -m experiments.train`` loop); the tests check that both give the same steps to
target and best values.

Evaluation point: an optimizer with a method ``evaluation_point(variables)`` (one tensor
per trainable variable, same order; e.g. schedule-free methods, which evaluate at an
average of their iterates) is evaluated with the weights set to those values, then set
back; the row records ``evaluated_at`` ("evaluation_point" or "weights").

Time: ``seconds`` counts the training steps only (the compiled chunks, synchronised);
evaluation time is ``eval_seconds``; building, tracing and the MLflow writes count in
neither (AlgoPerf keeps evaluation off the clock too).
"""

from __future__ import annotations

import hashlib
import inspect
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
                          else sample(o.rule.search_space, trials, seed, w.name, s, stream))
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
    from experiments.trainer import Trainer

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


def _numbers(obj) -> dict:
    """The optimizer's attributes that are plain numbers (its hyperparameters among them)."""
    return {k: v for k, v in vars(obj).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _variable_of(obj, name):
    v = getattr(obj, name, None)
    return v if v is not None and hasattr(v, "assign") else None


class Engine:
    """One (workload, optimizer option) in this process: a model, an optimizer and their
    traced chunk and evaluation, reused by every trial (see the module docstring)."""

    def __init__(self, workload: Workload, option: Optimizer, splits, hps: Sequence[dict]):
        import keras
        import tensorflow as tf

        from experiments.models import build_model

        self.w, self.option, self.splits = workload, option, splits
        keras.utils.set_random_seed(0)
        params = dict(workload.model)
        self.model = build_model(params.pop("name"), splits.input_shape, splits.num_classes,
                                 **params)
        self.variables = list(self.model.trainable_variables)
        self.x, self.y = tf.constant(splits.x_train), tf.constant(splits.y_train)
        self.x_val, self.y_val = tf.constant(splits.x_val), tf.constant(splits.y_val)
        self.hp_vars: dict = {}
        self.optimizer = self._build(hps[0])
        self.fixed: dict = {}
        self.fast = False
        other = next((h for h in hps if h != hps[0]), None)
        tunable = self._tunable(hps[0], other)
        # float64 first: ``1 - β`` then comes out as the Python float it replaces does
        for dtype in ("float64", "float32") if tunable is not None else ():
            try:
                self._make_variables(tunable, dtype)
                self._reset_plan = self._plan_reset()
                self._chunk, self._evaluate = self._trace(self.optimizer)
                self.fast = True
                break
            except Exception:  # a hyperparameter Python code reads while tracing (Keras's
                # SGD: `if self.momentum != 0`), or a
                self.optimizer = self._build(hps[0])  # dtype an operation refuses
        if not self.fast:
            self.optimizer = None

    # -- the optimizer ------------------------------------------------------------
    def _build(self, hp: dict):
        from experiments.optim import build_optimizer

        opt = build_optimizer(self.option.config(hp))
        opt.build(self.variables)
        return opt

    def _tunable(self, hp_a: dict, hp_b: dict | None) -> set | None:
        """The optimizer's attributes that hold the trial's hyperparameters, found by
        building it at two points; None where they cannot be variables."""
        if hp_b is None:
            return set()
        b = self._build(hp_b)
        a = self.optimizer
        na, nb = _numbers(a), _numbers(b)
        if na.keys() != nb.keys():
            return None
        changed = {k for k in na if na[k] != nb[k]}
        arguments = set(inspect.signature(type(a).__init__).parameters)
        if not changed <= arguments:  # a value derived in __init__ under another name
            return None
        lr_a = _variable_of(a, "_learning_rate")
        # every other variable of the optimizer (slots, counters) must not depend on them
        for va, vb in zip(a.variables, b.variables):
            if va is lr_a:
                continue
            if va.shape != vb.shape or not np.array_equal(va.numpy(), vb.numpy()):
                return None
        if lr_a is None and na.get("learning_rate") != nb.get("learning_rate"):
            return None
        return changed

    def _make_variables(self, names: set, dtype: str) -> None:
        import keras

        self.hp_vars = {}
        for name in sorted(names):
            # a Keras variable: its operators follow Keras's dtype promotion
            var = keras.Variable(float(getattr(self.optimizer, name)), dtype=dtype,
                                 trainable=False, name=f"hp_{name}")
            self.hp_vars[name] = var
            object.__setattr__(self.optimizer, name, var)
        self.fixed = {k: v for k, v in _numbers(self.optimizer).items() if k not in names}

    def _plan_reset(self) -> list:
        """How each optimizer variable returns to its state after ``build``: a copy of the
        weight it mirrors, else its value right after ``build``."""
        opt = self.optimizer
        lr = _variable_of(opt, "_learning_rate")
        plan = []
        for v in opt.variables:
            if v is lr:
                continue
            value = v.numpy()
            source = None
            if np.any(value):
                for j, w in enumerate(self.variables):
                    if tuple(w.shape) == tuple(v.shape) and np.array_equal(w.numpy(), value):
                        source = j
                        break
            plan.append((v, source, value))
        return plan

    def _set_hyperparameters(self, hp: dict) -> bool:
        """Assign ``hp`` to the variables; False if it needs another trace."""
        from experiments.optim import build_optimizer

        fresh = build_optimizer(self.option.config(hp))
        numbers = _numbers(fresh)
        if any(numbers.get(k) != v for k, v in self.fixed.items()):
            return False
        for name, var in self.hp_vars.items():
            var.assign(float(numbers[name]))
        lr, fresh_lr = (_variable_of(o, "_learning_rate") for o in (self.optimizer, fresh))
        if lr is not None:
            if fresh_lr is None:
                return False
            lr.assign(fresh_lr.numpy())
        return True

    # -- traced functions ---------------------------------------------------------------
    def _trace(self, optimizer):
        import tensorflow as tf

        from experiments.curvature import per_example_loss

        model, variables, x_all, y_all = self.model, self.variables, self.x, self.y
        batch = self.w.batch_size

        def chunk(idx, lens):
            ok = tf.constant(True)
            last = tf.constant(0.0)
            for k in tf.range(tf.shape(idx)[0]):
                i = idx[k][:lens[k]]
                x, y = tf.gather(x_all, i), tf.gather(y_all, i)
                with tf.GradientTape() as tape:
                    logits = model(x, training=True)
                    loss = (tf.reduce_sum(per_example_loss("cross_entropy", y, logits))
                            / tf.cast(lens[k], tf.float32))
                    if model.losses:
                        loss = loss + tf.add_n(model.losses)
                grads = tape.gradient(loss, variables)
                optimizer.apply_gradients(zip(grads, variables))
                ok = tf.logical_and(ok, tf.math.is_finite(loss))
                last = loss
            return ok, last

        metric = self.w.metric
        x_val, y_val = self.x_val, self.y_val
        point_of = getattr(optimizer, "evaluation_point", None)

        def measure():
            if metric == "excess_loss":
                layer = next(la for la in model.layers if hasattr(la, "excess_loss"))
                return tf.stack([layer.excess_loss(), tf.constant(0.0)])
            logits = model(x_val, training=False)
            if metric == "val_model_loss":
                return tf.stack([tf.add_n(model.losses), tf.constant(0.0)])
            total = tf.reduce_sum(per_example_loss("cross_entropy", y_val, logits))
            if model.losses:
                total = total + tf.add_n(model.losses) * tf.cast(tf.shape(y_val)[0], tf.float32)
            pred = tf.argmax(logits, axis=-1, output_type=y_val.dtype)
            return tf.stack([tf.cast(total, tf.float32),
                             tf.reduce_sum(tf.cast(tf.equal(pred, y_val), tf.float32))])

        def evaluate():
            if point_of is None:
                return measure()
            saved = [tf.identity(v) for v in variables]
            for v, p in zip(variables, point_of(variables)):
                v.assign(p)
            out = measure()
            with tf.control_dependencies([out]):
                for v, s in zip(variables, saved):
                    v.assign(s)
            return tf.identity(out)

        spec = [tf.TensorSpec([None, batch], tf.int32), tf.TensorSpec([None], tf.int32)]
        traced_chunk = tf.function(chunk, input_signature=spec)
        traced_eval = tf.function(evaluate)
        for f in (traced_chunk, traced_eval):
            if hasattr(f, "_omit_frequent_tracing_warning"):
                f._omit_frequent_tracing_warning = True
        # trace now, so that a failure falls back before any trial ran
        traced_chunk.get_concrete_function()
        traced_eval.get_concrete_function()
        return traced_chunk, traced_eval

    def _value(self, pair) -> float:
        loss, correct = (float(v) for v in pair)
        if self.w.metric in ("excess_loss", "val_model_loss"):
            return loss
        n = len(self.splits.y_val)
        return correct / n if self.w.metric == "val_accuracy" else loss / n

    # -- one trial ------------------------------------------------------------------------
    def run(self, spec: TrialSpec) -> dict:
        cpu = time.process_time()
        weights = initial_weights(self.w, self.splits.input_shape, self.splits.num_classes,
                                  spec.seed)
        for v, value in zip(self.model.weights, weights):
            v.assign(value)
        path = "variables"
        if self.fast and self._set_hyperparameters(spec.hp):
            for v, source, value in self._reset_plan:
                v.assign(weights[source] if source is not None else value)
            optimizer, chunk, evaluate = self.optimizer, self._chunk, self._evaluate
        else:  # rebuilt and retraced for this trial
            path = "retraced"
            optimizer = self._build(spec.hp)
            chunk, evaluate = self._trace(optimizer)
        idx, lens = batch_indices(len(self.splits.x_train), self.w.batch_size, spec.seed,
                                  spec.steps)
        out = Outcome(self.w, spec.stop_at_target)
        seconds = eval_seconds = 0.0
        start = time.perf_counter()
        out.record(0, self._value(evaluate().numpy()), 0.0)
        eval_seconds += time.perf_counter() - start
        step, diverged = 0, False
        while step < spec.steps and not out.stop:
            end = min(step + spec.eval_every, spec.steps)
            start = time.perf_counter()
            ok, _ = chunk(idx[step:end], lens[step:end])
            ok = bool(ok.numpy())
            seconds += time.perf_counter() - start
            step = end
            if not ok:
                diverged = True
                break
            start = time.perf_counter()
            value = self._value(evaluate().numpy())
            eval_seconds += time.perf_counter() - start
            out.record(step, value, seconds)
        point = getattr(optimizer, "evaluation_point", None) is not None
        row = out.row(spec, diverged=diverged, steps_run=int(optimizer.iterations.numpy()),
                      seconds=seconds, eval_seconds=eval_seconds,
                      evaluated_at="evaluation_point" if point else "weights", path=path)
        # everything the trial cost this process (its weights, resets, tracing if retraced)
        row["cpu_seconds"] = round(time.process_time() - cpu, 4)
        return row


def run_trial_with_trainer(spec: TrialSpec, data: DataCache) -> dict:
    """The same trial through ``experiments.trainer.fit`` (the reference for the tests):
    evaluations at the same steps, through the trainer's own evaluation."""
    import keras

    from experiments.models import build_model
    from experiments.optim import build_optimizer
    from experiments.trainer import Diverged, Interrupted, Trainer, fit

    w = spec.workload
    splits = data.get(w)
    keras.utils.set_random_seed(spec.seed)
    params = dict(w.model)
    model = build_model(params.pop("name"), splits.input_shape, splits.num_classes, **params)
    optimizer = build_optimizer(spec.optimizer.config(spec.hp))
    trainer = Trainer(model, optimizer, splits.x_train, splits.y_train)
    out = Outcome(w, spec.stop_at_target)
    point_of = getattr(optimizer, "evaluation_point", None)
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


# ---------------------------------------------------------------------------- running
def _groups(specs: Sequence[TrialSpec], pending: Sequence[int]) -> list[list[int]]:
    """Pending trials grouped by (workload, optimizer), the costliest group first."""
    groups: dict = {}
    for i in pending:
        s = specs[i]
        groups.setdefault((s.workload.name, s.optimizer.name), []).append(i)
    return sorted(groups.values(), key=lambda g: -sum(specs[i].steps for i in g))


def run_group(specs: Sequence[TrialSpec], group: Sequence[int], data: DataCache, emit) -> None:
    """Run one group's trials in this process; ``emit(index, row)`` after each."""
    first = specs[group[0]]
    engine = Engine(first.workload, first.optimizer, data.get(first.workload),
                    [specs[i].hp for i in group])
    for i in group:
        emit(i, engine.run(specs[i]))


def _quiet_tensorflow(threads: int | None) -> None:
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _worker(specs, tasks, results, threads) -> None:  # a process of the pool
    import traceback

    try:
        _quiet_tensorflow(threads)
        data = DataCache()
        while True:
            group = tasks.get()
            if group is None:
                break
            run_group(specs, group, data, lambda i, row: results.put(("row", i, row)))
        results.put(("done", None, None))
    except BaseException:
        results.put(("error", None, traceback.format_exc()))


def execute(specs: Sequence[TrialSpec], pending: Sequence[int], workers: int, emit) -> None:
    """Run the ``pending`` trials of ``specs``; ``emit(index, row)`` in this process as
    each finishes. ``workers`` > 1: that many processes, each taking the next
    (workload, optimizer) group when it is free; 1: here."""
    groups = _groups(specs, pending)
    workers = max(1, min(workers, len(groups)))
    if workers == 1:
        data = DataCache()
        for group in groups:
            run_group(specs, group, data, emit)
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for group in groups:
        tasks.put(group)
    for _ in range(workers):
        tasks.put(None)
    procs = [ctx.Process(target=_worker, args=(list(specs), tasks, results, 1), daemon=True)
             for _ in range(workers)]
    for p in procs:
        p.start()
    try:
        running = workers
        while running:
            kind, i, payload = results.get()
            if kind == "row":
                emit(i, payload)
            elif kind == "done":
                running -= 1
            else:
                raise RuntimeError(f"a benchmark worker failed:\n{payload}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
