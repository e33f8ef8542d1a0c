"""Schedule-Free AdamW beyond the registry's shared tests: y and x against the authors'
reference over 120 float32 steps, the evaluation point, the warmup-weighted average, and
why keras.optimizers.ScheduleFreeAdamW departs. (Reference, clipping, Keras integration
tests run for every rule from the registry.)"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_optimizers as co
from custom_optimizers import reference
from helpers import random_problem, run_keras, run_reference

ARGS = dict(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def _relative_to_travelled(actual, expected, init):
    travelled = max(np.max(np.abs(e - w)) for e, w in zip(expected, init))
    error = max(np.max(np.abs(np.float64(a) - e)) for a, e in zip(actual, expected))
    return error / travelled, travelled


@pytest.mark.parametrize("extra", [{}, {"decoupled_weight_decay": 0.1, "warmup_steps": 30}],
                         ids=["plain", "warmup_decay"])
def test_float32_120_steps_y_and_x_within_1e_4_of_the_distance_travelled(extra):
    init, grads = random_problem("float32", steps=120, seed=21, shapes=[(8, 6), (6,)])
    optimizer = co.ScheduleFreeAdamW(**ARGS, **extra)
    y = run_keras(optimizer, init, grads)
    ref = reference.ScheduleFreeAdamW(**ARGS, **{"decoupled_weight_decay": 0.0,
                                                 "warmup_steps": 0, **extra})
    y_ref = run_reference(ref, init, grads)
    variables = [keras.Variable(w) for w in y]
    x = [p.numpy() for p in optimizer.evaluation_point(optimizer._trainable_variables)]
    for actual, expected in ((y, y_ref), (x, ref.evaluation_point())):
        error, travelled = _relative_to_travelled(actual, expected, init)
        assert travelled > 0.05 and error <= 1e-4, (error, travelled)
    assert _relative_to_travelled(x, y_ref, init)[0] > 1e-2  # x and y are different points
    del variables


def test_evaluation_point_is_x_and_leaves_the_weights_alone():
    init, grads = random_problem("float64", steps=7, seed=3, shapes=[(4, 5), (3,)])
    optimizer = co.ScheduleFreeAdamW(**ARGS, warmup_steps=3)
    variables = [keras.Variable(w) for w in init]
    other = keras.Variable(np.arange(3.0))  # not the optimizer's: returned as it is
    apply = tf.function(lambda g: optimizer.apply_gradients(zip(g, variables)))
    for step in grads:
        apply([tf.constant(g) for g in step])
    before = [v.numpy().copy() for v in variables]
    points = optimizer.evaluation_point([variables[1], other, variables[0]])
    assert all(isinstance(p, tf.Tensor) for p in points)
    lr = float(np.float32(ARGS["learning_rate"]))  # as Keras stores it
    ref = reference.ScheduleFreeAdamW(**{**ARGS, "learning_rate": lr},
                                      decoupled_weight_decay=0.0, warmup_steps=3)
    run_reference(ref, init, grads)
    x = ref.evaluation_point()
    np.testing.assert_allclose(points[0].numpy(), x[1], rtol=1e-12)
    np.testing.assert_allclose(points[2].numpy(), x[0], rtol=1e-12)
    np.testing.assert_array_equal(points[1].numpy(), np.arange(3.0))
    for v, b in zip(variables, before):
        np.testing.assert_array_equal(v.numpy(), b)
    # y = β1 x + (1-β1) z, the weights held.
    for v, xs, z in zip(variables, optimizer.x, optimizer.z):
        np.testing.assert_allclose(v.numpy(), 0.9 * xs.numpy() + 0.1 * z.numpy(), rtol=1e-12)


def test_warmup_weighs_the_average_by_the_squared_largest_rate():
    # Warmup over 2 steps, η = 0.5: η(1) = 0.25, η(2) = η(3) = 0.5, so Σ η_max² after three
    # steps is 0.0625 + 0.25 + 0.25 and c(3) = 0.25 / 0.5625 (1/3 without warmup).
    optimizer = co.ScheduleFreeAdamW(learning_rate=0.5, warmup_steps=2)
    w = keras.Variable(np.zeros(2))
    for _ in range(3):
        optimizer.apply_gradients([(tf.constant([1.0, -1.0], tf.float64), w)])
    assert float(optimizer._weight_sum.numpy()) == 0.5625
    assert float(optimizer._lr_max.numpy()) == 0.5
    ref = reference.ScheduleFreeAdamW(0.5, 0.9, 0.999, 1e-8, 0.0, 2)
    run_reference(ref, [np.zeros(2)], [[np.array([1.0, -1.0])]] * 3)
    assert ref.weight_sum == 0.5625


def _keras_as_written(init, grads, lr, b1, b2, eps):
    """keras.optimizers.ScheduleFreeAdamW's update_step in NumPy, with ``momentum_old``
    read *after* ``assign_sub(momentum, ...)``, as its ``momentum.value`` (a live handle on
    the tf.Variable, not a copy) makes it."""
    y, z = [w.copy() for w in init], [w.copy() for w in init]
    v = [np.zeros_like(w) for w in init]
    for t, step in enumerate(grads, start=1):
        for i, g in enumerate(step):
            v[i] = v[i] + (g * g - v[i]) * (1 - b2)
            z[i] = z[i] - lr * g / (np.sqrt(v[i] / (1 - b2 ** t)) + eps)
            x_old = (y[i] - (1 - b1) * z[i]) / b1  # z already moved: the departure
            x_new = (1 - 1 / t) * x_old + z[i] / t
            y[i] = (1 - b1) * z[i] + b1 * x_new
    return y


def test_why_keras_schedule_free_departs():
    """Without warmup or decay: ~10% of the distance travelled from the authors' rule after
    120 steps, and 1e-6 from the same update with x recovered after z moved."""
    init, grads = random_problem("float64", steps=120, seed=21, shapes=[(8, 6), (6,)])
    keras_end = run_keras(keras.optimizers.ScheduleFreeAdamW(**ARGS), init, grads)
    ref = reference.ScheduleFreeAdamW(**ARGS, decoupled_weight_decay=0.0, warmup_steps=0)
    departure, _ = _relative_to_travelled(keras_end, run_reference(ref, init, grads), init)
    assert 0.03 < departure < 0.3, departure
    lr = float(np.float32(ARGS["learning_rate"]))
    as_written = _keras_as_written(init, grads, lr, 0.9, 0.999, 1e-8)
    assert _relative_to_travelled(keras_end, as_written, init)[0] < 1e-6


def test_base_weight_decay_is_refused_before_tensorflow_loads():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "experiments.train", "optimizer=schedule_free_adamw",
         "optimizer.weight_decay=0.1"], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error in config: optimizer.weight_decay=0.1 is not valid for "
        "optimizer=schedule_free_adamw: Keras's "
        "decay of the weights y alone is undone by y = β1 x + (1-β1) z; use "
        "decoupled_weight_decay (taken at y, applied to z)"]
