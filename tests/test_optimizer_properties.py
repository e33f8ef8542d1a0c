"""Properties of every lecture optimizer over generated hyperparameters and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_optimizers import rules

eps = st.sampled_from([0.0, 1e-12, 1e-7, 1e-3, 1.0])
lr = st.floats(1e-6, 10.0)


def _strategy(hp):
    """Values of one hyperparameter over its whole valid range (``Hyperparameter``)."""
    if isinstance(hp.default, bool):
        return st.booleans()
    if hp.name == "epsilon":
        return eps
    if hp.high is not None:  # a decay in [0, 1): its low end, or from 1e-6 up to 0.999.
        # Nothing in between: a decay such as 2.2e-308 makes β·m subnormal within a step or
        # two, which TensorFlow flushes to zero on the CPU and NumPy keeps (Lion's sign(β1 m)
        # is then 0 in one and ±1 in the other).
        high = min(hp.high, 0.999) if hp.high_open else hp.high
        return st.one_of(st.just(float(hp.low)), st.floats(max(hp.low, 1e-6), high))
    return st.sampled_from([hp.low, 1e-3, 0.1, 1.0, 10.0])


HYPER = {
    rule.name: st.fixed_dictionaries(
        {"learning_rate": lr, **{hp.name: _strategy(hp) for hp in rule.hyperparameters}})
    for rule in rules.all_rules()
}
CLASSES = {rule.name: rule.load_class() for rule in rules.all_rules()}
ADAPTIVE = [rule.name for rule in rules.all_rules() if rule.adaptive]
clipping = st.one_of(st.none(), st.tuples(st.floats(1e-3, 1e3), st.sampled_from(["norm", "sign"])))
gradients = st.lists(st.lists(st.floats(-1e3, 1e3, width=32), min_size=3, max_size=3),
                     min_size=1, max_size=6)
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _run(name, hp, clip, grads, start=(0.5, -1.0, 2.0)):
    extra = {} if clip is None else {"clip_threshold": clip[0], "clip_mode": clip[1]}
    opt = CLASSES[name](**hp, **extra)
    w = tf.Variable(np.array(start, dtype=np.float32))
    for g in grads:
        opt.apply_gradients([(tf.constant(np.array(g, dtype=np.float32)), w)])
    return w.numpy()


@pytest.mark.parametrize("name", list(CLASSES))
def test_finite_gradients_keep_weights_finite(name):
    @SETTINGS
    @given(hp=HYPER[name], clip=clipping, grads=gradients)
    def check(hp, clip, grads):
        assert np.all(np.isfinite(_run(name, hp, clip, grads)))

    check()


@pytest.mark.parametrize("name", ADAPTIVE)
def test_zero_gradients_leave_adaptive_weights_unchanged(name):
    """Fresh state and g = 0: the step is 0 (also with epsilon = 0, where 0/0 would be NaN)."""
    @SETTINGS
    @given(hp=HYPER[name], clip=clipping, steps=st.integers(1, 5))
    def check(hp, clip, steps):
        start = (0.5, -1.0, 2.0)
        if "decoupled_weight_decay" in hp:  # AdamW's shrink acts without a gradient
            hp = {**hp, "decoupled_weight_decay": 0.0}
        out = _run(name, hp, clip, [[0.0, 0.0, 0.0]] * steps, start)
        np.testing.assert_array_equal(out, np.array(start, dtype=np.float32))

    check()


@pytest.mark.parametrize("name", list(CLASSES))
def test_matches_reference_on_generated_cases(name):
    """The Keras optimizer equals the NumPy reference for generated hyperparameters."""
    from custom_optimizers import reference

    @SETTINGS
    @given(hp=HYPER[name], grads=gradients)
    def check(hp, grads):
        hp = {**hp, "learning_rate": float(np.float32(hp["learning_rate"]))}
        if "epsilon" in hp and hp["epsilon"] == 0.0:
            hp["epsilon"] = 1e-7  # the reference divides 0/0 where the optimizer guards
        ref = reference.BY_NAME[name](**hp)
        params = [np.array([0.5, -1.0, 2.0], dtype=np.float64)]
        for g in grads:
            params = ref.step(params, [np.array(g, dtype=np.float64)])
        opt = CLASSES[name](**hp)
        w = tf.Variable(np.array([0.5, -1.0, 2.0], dtype=np.float64))
        for g in grads:
            opt.apply_gradients([(tf.constant(np.array(g, dtype=np.float64)), w)])
        np.testing.assert_allclose(w.numpy(), params[0], rtol=1e-5, atol=1e-5 * hp["learning_rate"] * len(grads) + 1e-9)

    check()
