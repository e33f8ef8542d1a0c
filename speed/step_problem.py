"""The problem ``speed.optimizer_step`` times: a custom optimizer and its Keras twin
built alike, the variables and gradients, the compiled step, its work and its timing."""

from __future__ import annotations

import functools
import math
import time
from typing import Callable

import numpy as np

from speed.hlo import compiled_work
from experiments.core import registry

N_TENSORS = 4


def _power_of_two(x: float) -> float:
    return 2.0 ** round(math.log2(x))


# Each rule with a Keras twin at its default hyperparameters (custom_optimizers/rules, symbols
# as in docs/formulas.md), the learning rate rounded to a power of two so float32 holds it.
LECTURE_HYPERPARAMETERS = {
    rule.name: {**rule.defaults(), "learning_rate": _power_of_two(rule.learning_rate)}
    for rule in registry.rules() if rule.keras is not None
}


def optimizer_pair(rule: str, control: bool = False):
    """(custom optimizer, Keras built-in) for ``rule`` with the same lecture hyperparameters;
    with ``control``, two built-ins instead (an A/A comparison: the method's own noise)."""
    import keras

    from experiments.core.optim import keras_arguments, lecture_class

    hp = LECTURE_HYPERPARAMETERS[rule]
    class_name, kwargs = keras_arguments(rule, hp)
    builtin = getattr(keras.optimizers, class_name)
    first = builtin(**kwargs) if control else lecture_class(rule)(**hp)
    return first, builtin(**kwargs)


def split_sizes(size: int, parts: int) -> list[int]:
    parts = max(1, min(parts, size))
    base, extra = divmod(size, parts)
    return [base + (i < extra) for i in range(parts)]


def make_problem(size: int, seed: int):
    """Float32 parameters of ``size`` elements over N_TENSORS variables, and their gradients."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    shapes = split_sizes(size, N_TENSORS)
    variables = [
        keras.Variable(rng.standard_normal(n, dtype=np.float32), name=f"w{i}")
        for i, n in enumerate(shapes)
    ]
    grads = [tf.constant(rng.standard_normal(n, dtype=np.float32)) for n in shapes]
    return variables, grads


def make_step(optimizer, variables, grads, xla: bool) -> Callable[[], None]:
    """A no-argument callable running ``optimizer.apply_gradients`` once, compiled (a
    ``functools.partial`` of the ``tf.function``, so that its HLO can be read)."""
    import tensorflow as tf

    optimizer.build(variables)

    @tf.function(jit_compile=xla, autograph=False)
    def step(grads):
        optimizer.apply_gradients(zip(grads, variables))

    return functools.partial(step, grads)


def step_work(fn, size: int, parts: int) -> tuple[float, float]:
    """``compiled_work`` of a step made by ``make_step`` with XLA."""
    hlo = fn.func.experimental_get_compiler_ir(*fn.args)(stage="optimized_hlo")
    return compiled_work(hlo, size, min(split_sizes(size, parts)))


def time_calls(fn: Callable[[], None], n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def calls_per_sample(fn: Callable[[], None], min_seconds: float) -> int:
    """Calls so that one timing of ``fn`` lasts about ``min_seconds``."""
    once = min(time_calls(fn, 1) for _ in range(3))
    return max(1, min(10_000, math.ceil(min_seconds / max(once, 1e-7))))
