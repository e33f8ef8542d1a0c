"""The benchmark's way to run a trial: ``Engine`` keeps, per (workload, optimizer option)
in a process, one model, one optimizer and one traced training chunk and evaluation.

The trials differ by hyperparameters, initial weights and batch order, so the optimizer's
numeric hyperparameters become ``tf.Variable``\\ s that each trial assigns, and the weights
and the optimizer's slots are reset between trials. A trial then costs its training
steps, its evaluations (on the device, one call each) and a few assignments. The
optimizer says which of its hyperparameters may be variables and how its state resets
(``custom_optimizers.capabilities``: declared by our classes, described for Keras's
built-ins); a trial that changes one that may not (a value read by Python code while
tracing, a slot initialised from it) is rebuilt and its step retraced instead: slower,
never different (column ``path``).
"""

from __future__ import annotations

import time
from typing import Sequence

from custom_optimizers import capabilities
from experiments.benchmark.trials import Outcome, TrialSpec, batch_indices, initial_weights
from experiments.benchmark.workloads import Optimizer, Workload


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
                self._reset = capabilities.of(self.optimizer).initial_state()
                self._chunk, self._evaluate = self._trace(self.optimizer)
                self.fast = True
                break
            except (TypeError, ValueError):  # a dtype an operation of the step refuses
                self.optimizer = self._build(hps[0])
        if not self.fast:
            self.optimizer = None

    # -- the optimizer ------------------------------------------------------------
    def _build(self, hp: dict):
        from experiments.core.optim import build_optimizer

        opt = build_optimizer(self.option.config(hp))
        opt.build(self.variables)
        return opt

    def _tunable(self, hp_a: dict, hp_b: dict | None) -> set | None:
        """The optimizer's hyperparameters that differ between two points of the search,
        if it may hold all of them in variables; None where it may not."""
        if hp_b is None:
            return set()
        a = capabilities.of(self.optimizer)
        b = capabilities.of(self._build(hp_b))
        values_a, values_b = a.hyperparameters(), b.hyperparameters()
        changed = {k for k, v in values_a.items() if values_b[k] != v}
        return changed if changed <= a.tunable else None

    def _make_variables(self, names: set, dtype: str) -> None:
        offers = capabilities.of(self.optimizer)
        self.hp_vars = offers.hold_in_variables(names, dtype)
        self.fixed = {k: v for k, v in offers.hyperparameters().items() if k not in names}

    def _set_hyperparameters(self, hp: dict) -> bool:
        """Assign ``hp`` to the variables; False if it needs another trace."""
        from experiments.core.optim import build_optimizer

        fresh = capabilities.of(build_optimizer(self.option.config(hp)))
        values = fresh.hyperparameters()
        if any(values[k] != v for k, v in self.fixed.items()):
            return False
        for name, var in self.hp_vars.items():
            var.assign(float(values[name]))
        capabilities.of(self.optimizer).learning_rate = fresh.learning_rate
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
        offers = capabilities.of(optimizer)
        point_of = offers.evaluation_point if offers.has_evaluation_point else None

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
            self._reset.restore(weights)
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
        point = capabilities.of(optimizer).has_evaluation_point
        row = out.row(spec, diverged=diverged, steps_run=int(optimizer.iterations.numpy()),
                      seconds=seconds, eval_seconds=eval_seconds,
                      evaluated_at="evaluation_point" if point else "weights", path=path)
        # everything the trial cost this process (its weights, resets, tracing if retraced)
        row["cpu_seconds"] = round(time.process_time() - cpu, 4)
        return row
