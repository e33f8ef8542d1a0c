"""The training loop behind ``python -m experiments.train``.

A compiled step (``tf.function``, optionally XLA) runs ``steps_per_execution`` optimizer
steps per call over index batches into the training set, which lives on the device once.
Under a ``tf.distribute`` strategy each replica takes its contiguous share of every
global batch and scales its loss by the global batch size, so the optimizer's all-reduce
sums to exactly the single-device gradient.
Each step returns one vector of diagnostics — loss, correct predictions, learning rate,
global and per-layer gradient norms (before clipping), the weights' global norm, and the
effective learning rate's mean/min/max for the adaptive optimizers — so a step costs one
transfer to Python.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf
import keras

from custom_optimizers import capabilities
from experiments.curvature import per_example_loss
from experiments.core.optim import effective_learning_rates

EVAL_BATCH = 1024


class Diverged(RuntimeError):
    """The loss, the gradient or the weights became NaN or infinite."""

    def __init__(self, step: int, loss: float, what: str = "loss", value: float | None = None):
        value = loss if value is None else value
        super().__init__(f"{what} became {value} at step {step}")
        self.step, self.loss, self.what = step, loss, what


# Besides the loss, a network can die with a finite loss (weights overflowed to NaN that
# a saturated softmax hides): these diagnostics must stay finite too.
WATCHED = ("grad_norm", "weight_norm")


@dataclass
class History:
    """What one training produced, for plots and the caller."""

    steps: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    epoch_steps: list = field(default_factory=list)
    epoch: dict = field(default_factory=dict)  # metric name -> list per epoch
    final: dict = field(default_factory=dict)


def layer_groups(model) -> dict[str, list[int]]:
    """Trainable-variable indices grouped by the layer that owns them.

    The layer is the variable's path without its own name and without the model's name
    (``sequential/dense_1/kernel`` -> ``dense_1``), so metric names don't depend on how
    many models the process built before.
    """
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(model.trainable_variables):
        parts = v.path.split("/")[:-1] or [v.path]
        if len(parts) > 1 and parts[0] == model.name:
            parts = parts[1:]
        groups.setdefault("/".join(parts), []).append(i)
    return groups


@keras.saving.register_keras_serializable(package="optimizer_lab")
class HalfSquaredError(keras.losses.Loss):
    """``trainer.loss=mse``: mean over examples of ½‖logits − one_hot(y)‖² (integer labels),
    so that a saved model carries the loss it was trained with."""

    def __init__(self, name="half_squared_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return per_example_loss("mse", tf.reshape(tf.cast(y_true, tf.int32), [-1]), y_pred)


class Trainer:
    """Compiled train and evaluation steps for one model, optimizer and dataset."""

    def __init__(self, model, optimizer, x_train, y_train, *, jit_compile=False,
                 strategy=None, loss="cross_entropy"):
        self.model, self.optimizer = model, optimizer
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        self.loss = loss  # cross_entropy or mse (experiments.curvature.per_example_loss)
        self.loss_fn = (keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                        if loss == "cross_entropy" else HalfSquaredError())
        self.x = tf.constant(x_train)
        self.y = tf.constant(y_train)
        self.groups = layer_groups(model)
        self.layer_names = list(self.groups)
        if not model.trainable_variables:
            raise ValueError("the model has no trainable variables")
        # Compiled so that a saved model carries its optimizer (and state) and can be
        # evaluated or trained further with plain Keras; training here uses the steps below.
        model.compile(optimizer=optimizer, loss=self.loss_fn, metrics=["accuracy"])
        self.optimizer.build(model.trainable_variables)
        self.adaptive = effective_learning_rates(optimizer) is not None
        self.names = (["loss", "correct", "learning_rate", "grad_norm", "weight_norm"]
                      + [f"grad_norm/{n}" for n in self.layer_names]
                      + (["effective_lr/mean", "effective_lr/min", "effective_lr/max"]
                         if self.adaptive else []))
        # One trace for every chunk shape ([steps, batch] varies at epoch ends).
        self._chunk = tf.function(self._train_chunk, jit_compile=jit_compile,
                                  input_signature=[tf.TensorSpec([None, None], tf.int32)])
        # One trace for every evaluation batch (the validation and test splits and the last,
        # shorter batch differ in length): without the signature each job traced it twice.
        self._eval = tf.function(self._eval_batch, jit_compile=jit_compile, input_signature=[
            tf.TensorSpec([None, *self.x.shape[1:]], self.x.dtype),
            tf.TensorSpec([None], self.y.dtype)])
        # Each function above is traced exactly once per Trainer, for its own model; a sweep
        # that makes a Trainer per job in one process is not retracing, so TensorFlow's
        # "frequent retracing" warning (counted per Python function, across instances)
        # would be a false alarm there.
        for function in (self._chunk, self._eval):
            if hasattr(function, "_omit_frequent_tracing_warning"):
                function._omit_frequent_tracing_warning = True

    # -- compiled parts -----------------------------------------------------------
    def _one_step(self, idx):
        """One optimizer step on the global batch ``idx`` (this replica's share of it)."""
        global_batch = tf.cast(tf.shape(idx)[0], tf.float32)
        ctx = tf.distribute.get_replica_context()
        if self.replicas > 1:
            n, r = tf.shape(idx)[0], ctx.replica_id_in_sync_group
            idx = idx[n * r // self.replicas:n * (r + 1) // self.replicas]
        x = tf.gather(self.x, idx)
        y = tf.gather(self.y, idx)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            per_example = per_example_loss(self.loss, y, logits)
            loss = tf.reduce_sum(per_example) / global_batch
            if self.model.losses:
                loss = loss + tf.add_n(self.model.losses) / self.replicas
        grads = tape.gradient(loss, variables)
        dense = [tf.convert_to_tensor(g) for g in grads]
        pred = tf.argmax(logits, axis=-1, output_type=y.dtype)
        correct = tf.reduce_sum(tf.cast(tf.equal(pred, y), tf.float32))
        if self.replicas > 1:  # the global gradient and batch, for the diagnostics only
            dense = ctx.all_reduce("sum", dense)
            loss, correct = ctx.all_reduce("sum", [loss, correct])
        sq = [tf.reduce_sum(tf.square(tf.cast(g, tf.float32))) for g in dense]
        layer_norms = [tf.sqrt(tf.add_n([sq[i] for i in ix])) for ix in self.groups.values()]
        grad_norm = tf.sqrt(tf.add_n(sq))
        # The global L2 norm of the weights the loss was taken at (before this update).
        weight_norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32)))
                                        for v in variables]))
        self.optimizer.apply_gradients(zip(grads, variables))
        lr = tf.cast(capabilities.of(self.optimizer).current_learning_rate(), tf.float32)
        values = [tf.cast(loss, tf.float32), correct, lr, grad_norm, weight_norm] + layer_norms
        if self.adaptive:
            rates = [tf.reshape(tf.cast(r, tf.float32), [-1])
                     for r in effective_learning_rates(self.optimizer)]
            allr = tf.concat(rates, 0)
            values += [tf.reduce_mean(allr), tf.reduce_min(allr), tf.reduce_max(allr)]
        return tf.stack(values)

    def _train_chunk(self, index_matrix):
        """``index_matrix[k]`` is the k-th batch: one optimizer step per row."""
        n = tf.shape(index_matrix)[0]
        out = tf.TensorArray(tf.float32, size=n)
        for k in tf.range(n):
            row = self.strategy.run(self._one_step, args=(index_matrix[k],))
            out = out.write(k, self.strategy.experimental_local_results(row)[0])
        return out.stack()

    def _eval_batch(self, x, y):
        logits = self.model(x, training=False)
        loss = tf.reduce_sum(per_example_loss(self.loss, y, logits))
        if self.model.losses:  # the model's own losses count as in training (as in Keras)
            loss = loss + tf.add_n(self.model.losses) * tf.cast(tf.shape(y)[0], tf.float32)
        pred = tf.argmax(logits, axis=-1, output_type=y.dtype)
        return tf.stack([tf.cast(loss, tf.float32),
                         tf.reduce_sum(tf.cast(tf.equal(pred, y), tf.float32))])

    # -- Python side ----------------------------------------------------------------
    def evaluate(self, x, y) -> tuple[float, float]:
        """(mean loss, accuracy) over ``x, y``, at the optimizer's evaluation point
        (``at_evaluation_point``)."""
        total = np.zeros(2)
        with at_evaluation_point(self.model, self.optimizer):
            for i in range(0, len(x), EVAL_BATCH):
                total += self._eval(tf.constant(x[i:i + EVAL_BATCH]),
                                    tf.constant(y[i:i + EVAL_BATCH])).numpy()
        return total[0] / len(x), total[1] / len(x)

    def epoch_batches(self, n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
        """The epoch's shuffled batches; the order depends only on (seed, epoch)."""
        perm = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)
        return [perm[i:i + batch_size] for i in range(0, n, batch_size)]

    def run_batches(self, batches, steps_per_execution: int, align: int = 0,
                    first_step: int = 0):
        """Yield, per compiled call, the diagnostics rows of its optimizer steps.

        One call runs up to ``steps_per_execution`` consecutive batches of equal size; the
        weights are only ever seen between calls, which is where training may stop. With
        ``align``, a call also ends after every step that is a multiple of it (the first
        batch being step ``first_step + 1``), so a probe can look at the weights there.
        """
        i = 0
        while i < len(batches):
            size = len(batches[i])
            j = i
            while j < len(batches) and j - i < steps_per_execution and len(batches[j]) == size:
                j += 1
                if align and (first_step + j) % align == 0:
                    break
            yield self._chunk(tf.constant(np.stack(batches[i:j]))).numpy()
            i = j


@contextlib.contextmanager
def at_evaluation_point(model, optimizer):
    """Inside the block the model's trainable weights are the optimizer's evaluation point
    (``optimizer.evaluation_point(variables)``: Schedule-Free's average x); afterwards the
    weights it trains (y) are back, bit for bit. Without an evaluation point: nothing moves.
    """
    offers = capabilities.of(optimizer)
    if not offers.has_evaluation_point:
        yield
        return
    point = offers.evaluation_point
    variables = model.trainable_variables
    trained = [tf.identity(v) for v in variables]
    for variable, value in zip(variables, point(variables)):
        variable.assign(value)
    try:
        yield
    finally:
        for variable, value in zip(variables, trained):
            variable.assign(value)


@dataclass
class TrainingState:
    """Where training stands: enough to resume exactly, mid-epoch included.

    The batch order depends only on (seed, epoch), so ``epoch`` and ``batch`` (batches of
    that epoch already done) say which optimizer step comes next; the sums rebuild the
    epoch's running loss and accuracy.
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: float = 0.0
    seen: int = 0
    epoch_seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingState":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


class Interrupted(RuntimeError):
    """Training stopped at a step boundary because ``should_stop()`` said so."""

    def __init__(self, progress: TrainingState):
        super().__init__(f"interrupted at step {progress.step}")
        self.progress = progress


def fit(trainer: Trainer, splits, *, epochs: int, batch_size: int, seed: int,
        steps_per_execution: int = 8, max_steps: int | None = None,
        log_every_n_steps: int = 1, progress: TrainingState | None = None,
        on_step: Callable[[int, dict], None] | None = None,
        on_epoch: Callable[[int, int, dict], None] | None = None,
        on_epoch_end: Callable[[TrainingState], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        probe: Callable[[int, bool], None] | None = None, probe_every: int = 0) -> History:
    """Train for ``epochs`` (or ``max_steps``); report per-step and per-epoch metrics.

    ``on_step(step, metrics)`` gets every ``log_every_n_steps``-th step's metrics
    (``loss``, ``grad_norm``, ``grad_norm/<layer>``, ``weight_norm``, ``learning_rate``,
    ``effective_lr/*``); ``on_epoch(epoch, step, metrics)`` gets ``epoch_loss``,
    ``epoch_accuracy``, ``val_loss``, ``val_accuracy``, ``epoch_time_s``;
    ``on_epoch_end(progress)`` runs after it (a checkpoint). ``progress`` resumes from a
    saved ``TrainingState``. Raises ``Diverged`` on the first non-finite loss (or gradient or
    weight norm), after reporting
    the steps before it, and ``Interrupted`` (carrying the progress) as soon as
    ``should_stop()`` is true after a compiled call. ``probe(step, final)`` looks at the
    weights before the first step, after every ``probe_every``-th and after the last
    (``final``; it may repeat the last step), between compiled calls (curvature, weight
    snapshots).
    """
    history = History()
    n = len(splits.x_train)
    p = progress or TrainingState()
    if probe and p.step == 0:
        probe(0, False)
    while p.epoch < epochs:
        start = time.perf_counter() - p.epoch_seconds
        batches = trainer.epoch_batches(n, batch_size, seed, p.epoch)[p.batch:]
        if max_steps is not None:
            batches = batches[:max(0, max_steps - p.step)]
        if not batches and p.batch == 0:
            break
        done = 0
        for rows in trainer.run_batches(batches, steps_per_execution, probe_every, p.step):
            for row in rows:
                batch_len = len(batches[done])
                done += 1
                values = dict(zip(trainer.names, row.tolist()))
                loss = values.pop("loss")
                if not math.isfinite(loss):
                    raise Diverged(p.step + 1, loss)
                for key in WATCHED:
                    if key in values and not math.isfinite(values[key]):
                        raise Diverged(p.step + 1, loss, key, values[key])
                p.step += 1
                p.batch += 1
                p.loss_sum += loss * batch_len
                p.correct += values.pop("correct")
                p.seen += batch_len
                if p.step % log_every_n_steps == 0:
                    history.steps.append(p.step)
                    history.losses.append(loss)
                    if on_step:
                        on_step(p.step, {"loss": loss, **values})
            if probe and probe_every and p.step % probe_every == 0:
                probe(p.step, False)
            if should_stop is not None and should_stop():
                p.epoch_seconds = time.perf_counter() - start
                raise Interrupted(p)
        val_loss, val_acc = trainer.evaluate(splits.x_val, splits.y_val)
        metrics = {"epoch_loss": p.loss_sum / p.seen, "epoch_accuracy": p.correct / p.seen,
                   "val_loss": val_loss, "val_accuracy": val_acc,
                   "epoch_time_s": time.perf_counter() - start}
        history.epoch_steps.append(p.step)
        for k, v in metrics.items():
            history.epoch.setdefault(k, []).append(v)
        if on_epoch:
            on_epoch(p.epoch, p.step, metrics)
        p.epoch, p.batch, p.loss_sum, p.correct, p.seen, p.epoch_seconds = \
            p.epoch + 1, 0, 0.0, 0.0, 0, 0.0
        if on_epoch_end:
            on_epoch_end(p)
        if should_stop is not None and should_stop():
            raise Interrupted(p)
        if max_steps is not None and p.step >= max_steps:
            break
    if probe:
        probe(p.step, True)
    test_loss, test_acc = trainer.evaluate(splits.x_test, splits.y_test)
    history.final = {"test_loss": test_loss, "test_accuracy": test_acc, "steps": p.step}
    return history
