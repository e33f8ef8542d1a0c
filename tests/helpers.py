"""What the tests share, written once: the project's root, random problems, running an
optimizer or its NumPy reference over them, comparing weights, the convergence problems,
and the check of a rule against its reference that every rule gets by registering."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

#: The repository (tests/ is one level below it).
ROOT = Path(__file__).resolve().parents[1]

SHAPES = [(), (3,), (4, 5), (2, 3, 2)]
STEPS = 50
# (rtol, atol) per variable dtype against the reference with the exact learning rate.
TOLERANCE = {"float32": (1e-5, 1e-5), "float64": (1e-7, 1e-7)}
# float64 against the reference fed the same float32-rounded learning rate Keras uses.
FLOAT64_SAME_LR_TOLERANCE = 1e-12


def random_problem(dtype, steps=STEPS, seed=0, scale=3.0, shapes=SHAPES):
    """Initial weights and ``steps`` lists of random gradients, one per shape."""
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=s).astype(dtype) for s in shapes]
    grads = [[(scale * rng.normal(size=s)).astype(dtype) for s in shapes] for _ in range(steps)]
    return init, grads


def run_keras(optimizer, init, grads, compiled=True, jit_compile=False):
    """Apply ``grads`` step by step with ``optimizer``; return the final weights.
    ``compiled``: each step in ``tf.function`` (with XLA if ``jit_compile``)."""
    variables = [keras.Variable(w, dtype=w.dtype) for w in init]
    optimizer.build(variables)

    def apply(step_grads):
        optimizer.apply_gradients(zip(step_grads, variables))

    apply = tf.function(apply, jit_compile=jit_compile) if compiled else apply
    for step_grads in grads:
        apply([tf.constant(g) for g in step_grads])
    return [v.numpy() for v in variables]


def run_reference(ref, init, grads):
    params = [np.asarray(w, np.float64) for w in init]
    for step_grads in grads:
        params = ref.step(params, [np.asarray(g, np.float64) for g in step_grads])
    return params


def assert_weights_close(actual, expected, rtol, atol):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(np.asarray(a, np.float64), e, rtol=rtol, atol=atol)


def max_abs_deviation(actual, expected):
    return max(
        float(np.max(np.abs(np.asarray(a, np.float64) - e))) for a, e in zip(actual, expected)
    )


def float32_rounded(value):
    return float(np.float32(value))


def check_against_reference(cls, reference_cls, kwargs, dtype="float64"):
    """``cls(**kwargs)`` follows ``reference_cls(**kwargs)`` over 50 random steps of four
    tensors, within ``TOLERANCE`` (float64 also within 1e-12 of the reference fed Keras's
    float32-rounded learning rate), and the weights moved far beyond the tolerance."""
    init, grads = random_problem(dtype)
    actual = run_keras(cls(**kwargs), init, grads)
    for a, w in zip(actual, init):
        assert a.dtype == np.dtype(dtype) and a.shape == w.shape
    rtol, atol = TOLERANCE[dtype]
    expected = run_reference(reference_cls(**kwargs), init, grads)
    assert_weights_close(actual, expected, rtol, atol)
    assert max_abs_deviation(init, expected) > 1e3 * atol  # the comparison means something
    if dtype == "float64":
        lr = float32_rounded(kwargs["learning_rate"])
        same_lr = run_reference(reference_cls(**{**kwargs, "learning_rate": lr}), init, grads)
        assert_weights_close(actual, same_lr, FLOAT64_SAME_LR_TOLERANCE,
                             FLOAT64_SAME_LR_TOLERANCE)


# ------------------------------------------------------------------------ convergence
QUADRATIC_A = np.array([[3.0, 1.0], [1.0, 2.0]])  # symmetric positive definite
QUADRATIC_MIN = np.array([1.0, -2.0])


def quadratic(w):
    d = w - tf.constant(QUADRATIC_MIN)
    return 0.5 * tf.reduce_sum(d * tf.linalg.matvec(tf.constant(QUADRATIC_A), d))


def rosenbrock(w):
    return (1.0 - w[0]) ** 2 + 100.0 * (w[1] - w[0] ** 2) ** 2


def minimize(optimizer, loss, start, steps):
    w = keras.Variable(np.array(start, np.float64))
    optimizer.build([w])

    @tf.function
    def train(n):
        for _ in tf.range(n):
            with tf.GradientTape() as tape:
                value = loss(w.value)
            optimizer.apply_gradients([(tape.gradient(value, w.value), w)])

    train(tf.constant(steps))
    assert int(optimizer.iterations.numpy()) == steps
    return w.numpy()
