"""The lecture's update rules, checked number by number.

* every optimizer against its independent NumPy reference (``custom_optimizers.reference``)
  over 50 steps of random gradients, in float32 and float64, with and without clipping;
* a one-step case per optimizer whose numbers are worked out by hand in a comment;
* the equivalences of ``docs/formulas.md`` with Keras's built-in optimizers (each rule's
  ``KerasTwin``);
* argument checks, config round trips, the lecture's clipping, effective learning rates;
* convergence on a convex quadratic and on Rosenbrock's function.

Tolerances: Keras keeps the learning rate in a float32 variable, so a float64 run differs
from a float64 reference by the rounding of ``lr`` (relative ~1e-8 per step): float64 is
checked to 1e-7 relative against the reference with the exact ``lr``, and to 1e-12 against
the reference fed the float32-rounded ``lr`` (which proves the rest of the rule runs in
float64). float32 runs are checked to 1e-5.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import custom_optimizers as co
from custom_optimizers import reference, rules
from experiments.core import registry
from helpers import (FLOAT64_SAME_LR_TOLERANCE, QUADRATIC_MIN, TOLERANCE, assert_weights_close,
                     check_against_reference, float32_rounded, max_abs_deviation, minimize,
                     quadratic, random_problem, rosenbrock, run_keras, run_reference)

DTYPES = ["float32", "float64"]


# ------------------------------------------------------------ against the reference


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_numpy_reference(optimizer_case, dtype):
    check_against_reference(optimizer_case.cls, reference.BY_NAME[optimizer_case.name],
                            optimizer_case.kwargs, dtype)


@pytest.mark.parametrize("clip_mode", ["norm", "sign"])
def test_matches_numpy_reference_with_clipping(optimizer_case, clip_mode):
    """float64 only: the clipping is the same code in either dtype, and float64 lets the
    check be tight (1e-12 against the reference with the float32-rounded lr)."""
    threshold = 2.0
    init, grads = random_problem("float64", seed=1)
    norms = [np.linalg.norm(g) for step in grads for g in step]
    # The data exercises both branches: some gradients are clipped, some are not.
    assert min(norms) < threshold < max(norms)

    actual = run_keras(
        optimizer_case.make(clip_threshold=threshold, clip_mode=clip_mode), init, grads
    )
    ref = optimizer_case.reference(clip_threshold=threshold, clip_mode=clip_mode)
    expected = run_reference(ref, init, grads)
    rtol, atol = TOLERANCE["float64"]
    assert_weights_close(actual, expected, rtol, atol)
    lr = float32_rounded(optimizer_case.kwargs["learning_rate"])
    ref = optimizer_case.reference(learning_rate=lr, clip_threshold=threshold, clip_mode=clip_mode)
    same_lr = run_reference(ref, init, grads)
    assert_weights_close(actual, same_lr, FLOAT64_SAME_LR_TOLERANCE, FLOAT64_SAME_LR_TOLERANCE)
    unclipped = run_reference(optimizer_case.reference(), init, grads)
    assert max_abs_deviation(expected, unclipped) > 1e3 * atol


def test_eager_and_graph_agree(optimizer_case):
    init, grads = random_problem("float64", steps=5, seed=2)
    eager = run_keras(optimizer_case.make(clip_threshold=2.0), init, grads, compiled=False)
    graph = run_keras(optimizer_case.make(clip_threshold=2.0), init, grads, compiled=True)
    assert_weights_close(eager, graph, 1e-14, 1e-14)


@pytest.mark.slow
def test_fused_kernel_and_xla_paths_agree(optimizer_case, monkeypatch):
    """The three ways a rule's update can run give the same weights: plain ops in a graph,
    the update alone as one XLA cluster (what large variables get from
    ``LectureOptimizer._run_kernel``, forced here for small ones) and the whole step under
    XLA; in float64 to rounding, and all three follow the reference. Every rule of the
    registry: the ones on TensorFlow's fused training ops (SGD, momentum) have no
    separate kernel path, and their three runs agree as well."""
    from custom_optimizers import _base

    dtype = "float64"
    init, grads = random_problem(dtype, steps=8, seed=5, shapes=[(4, 5), (3,)])
    runs = {}
    for path, min_size, jit in [("plain", 2**62, False), ("fused", 0, False), ("xla", 0, True)]:
        monkeypatch.setattr(_base, "FUSED_MIN_SIZE", min_size)
        runs[path] = run_keras(optimizer_case.make(clip_threshold=4.0), init, grads,
                               jit_compile=jit)
    assert_weights_close(runs["fused"], runs["plain"], 1e-14, 1e-14)
    assert_weights_close(runs["xla"], runs["plain"], 1e-14, 1e-14)
    rtol, atol = TOLERANCE[dtype]
    reference_run = optimizer_case.reference(clip_threshold=4.0)
    assert_weights_close(runs["fused"], run_reference(reference_run, init, grads), rtol, atol)


@pytest.mark.slow
def test_plain_and_guarded_division_agree(adaptive_optimizer_case, monkeypatch):
    """Where δ cannot vanish the kernel divides plainly; forcing ``divide_no_nan`` there
    gives bit-identical weights, in float32 and float64."""
    from custom_optimizers import _base

    monkeypatch.setattr(_base, "FUSED_MIN_SIZE", 0)
    for dtype in ("float32", "float64"):
        init, grads = random_problem(dtype, steps=6, seed=7, shapes=[(4, 5), (3,)])
        plain = run_keras(adaptive_optimizer_case.make(), init, grads)
        monkeypatch.setattr(_base.LectureOptimizer, "_guard_zero",
                            staticmethod(lambda *args: True))
        guarded = run_keras(adaptive_optimizer_case.make(), init, grads)
        monkeypatch.undo()
        monkeypatch.setattr(_base, "FUSED_MIN_SIZE", 0)
        for a, b in zip(plain, guarded):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype,delta,scale,guard", [
    ("float32", 1e-7, 1.0, False),
    ("float32", 1e-7, 0.0316, False),  # Adam's δ·sqrt(1-ρ2) with ρ2 = 0.999
    ("float32", 0.0, 1.0, True),
    ("float32", 1e-38, 1.0, True),  # below float32's smallest normal number
    ("float16", 1e-7, 1.0, True),  # float16 flushes it to a subnormal
    ("float16", 1e-2, 0.0316, False),
    ("float16", 1e-3, 0.0316, True),  # 3.2e-5: below float16's smallest normal number
    ("bfloat16", 1e-7, 1.0, False),  # float32's exponent range
    ("float64", 1e-300, 0.0316, False),
])
def test_guard_zero_decision(dtype, delta, scale, guard):
    assert co.LectureOptimizer._guard_zero(delta, dtype, scale) is guard


def test_float16_zero_gradient_with_vanishing_delta_steps_zero(adaptive_optimizer_case,
                                                                 monkeypatch):
    """float16 weights, the default δ (1e-7 rounds to a float16 subnormal, and Adam's
    δ·sqrt(1-ρ2^t) to 0): a weight that never had a gradient stays where it is (0/0 is
    guarded), the others move and stay finite; fused and plain paths alike."""
    from custom_optimizers import _base

    for min_size in (0, 2**62):
        monkeypatch.setattr(_base, "FUSED_MIN_SIZE", min_size)
        kwargs = {k: v for k, v in adaptive_optimizer_case.kwargs.items() if k != "epsilon"}
        if "decoupled_weight_decay" in kwargs:  # AdamW: no shrink, so the weight must stay
            kwargs["decoupled_weight_decay"] = 0.0
        optimizer = adaptive_optimizer_case.cls(**kwargs)
        init = [np.array([1.0, -1.0, 0.5], dtype="float16")]
        grads = [[np.array([0.0, 0.25, -0.5], dtype="float16")]] * 3
        end = run_keras(optimizer, init, grads)[0]
        assert np.all(np.isfinite(end)), (min_size, end)
        assert end[0] == init[0][0]
        assert end[1] < init[0][1] and end[2] > init[0][2]


# ------------------------------------------------------------------ one step by hand

W0 = [1.0, -2.0]
G0 = [0.5, -1.0]
# Each case: arguments, the weights after one step from W0 with gradient G0, and the
# optimizer's slots after that step, all worked out by hand:
HAND_CASES = {
    # W - lr*g = [1 - 0.05, -2 + 0.1]
    "sgd": ({"learning_rate": 0.1}, [0.95, -1.9], {}),
    # v = 0.9*0 + 0.1*g = [0.05, -0.1];  W - 0.1*v = [1 - 0.005, -2 + 0.01]
    "momentum": (
        {"learning_rate": 0.1, "momentum": 0.9},
        [0.995, -1.99],
        {"velocities": [0.05, -0.1]},
    ),
    # v = [0.05, -0.1];  step = 0.9*v + 0.1*g = [0.045 + 0.05, -0.09 - 0.1] = [0.095, -0.19]
    # W - 0.1*step = [1 - 0.0095, -2 + 0.019]
    "nesterov": (
        {"learning_rate": 0.1, "momentum": 0.9},
        [0.9905, -1.981],
        {"velocities": [0.05, -0.1]},
    ),
    # r = g² = [0.25, 1];  δ + sqrt(r) = [0.5 + 0.5, 0.5 + 1] = [1, 1.5]
    # W - 0.1*g/(δ+sqrt r) = [1 - 0.05, -2 + 0.1/1.5] = [0.95, -1.9333...]
    # (δ inside the root would give sqrt(0.75) = 0.866 and W[0] = 0.9423)
    "adagrad": (
        {"learning_rate": 0.1, "epsilon": 0.5},
        [0.95, -2.0 + 0.1 / 1.5],
        {"accumulators": [0.25, 1.0]},
    ),
    # r = 0.25*g² = [0.0625, 0.25];  δ + sqrt(r) = [0.5 + 0.25, 0.5 + 0.5] = [0.75, 1]
    # W - 0.1*g/(δ+sqrt r) = [1 - 0.05/0.75, -2 + 0.1] = [0.9333..., -1.9]
    "rmsprop": (
        {"learning_rate": 0.1, "rho": 0.75, "epsilon": 0.5},
        [1.0 - 0.05 / 0.75, -1.9],
        {"velocities": [0.0625, 0.25]},
    ),
    # v = 0.5*g = [0.25, -0.5], r = 0.25*g² = [0.0625, 0.25]
    # v̂ = v/(1-0.5) = g, r̂ = r/(1-0.75) = g² → δ + sqrt(r̂) = [1, 1.5]
    # W - 0.1*v̂/(δ+sqrt r̂) = [0.95, -1.9333...]
    "adam": (
        {"learning_rate": 0.1, "beta_1": 0.5, "beta_2": 0.75, "epsilon": 0.5},
        [0.95, -2.0 + 0.1 / 1.5],
        {"momentums": [0.25, -0.5], "velocities": [0.0625, 0.25]},
    ),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("name", list(HAND_CASES))
def test_one_step_by_hand(name, compiled):
    kwargs, expected_weights, expected_slots = HAND_CASES[name]
    optimizer = rules.get(name).load_class()(**kwargs)
    variable = keras.Variable(np.array(W0), dtype="float64")
    optimizer.build([variable])
    apply = lambda g: optimizer.apply_gradients([(g, variable)])  # noqa: E731
    apply = tf.function(apply) if compiled else apply
    apply(tf.constant(G0, dtype="float64"))

    # 1e-8: the learning rate is stored as float32(0.1).
    np.testing.assert_allclose(variable.numpy(), expected_weights, rtol=1e-8, atol=0)
    for attribute, expected in expected_slots.items():
        np.testing.assert_allclose(getattr(optimizer, attribute)[0].numpy(), expected, rtol=1e-15)
    assert int(optimizer.iterations.numpy()) == 1


# ------------------------------------------------------- equivalences with Keras's own

TWINS = {rule.name: rule for rule in rules.all_rules()
         if rule.keras is not None and rule.keras.equal_when is not None}


def twin_pair(rule):
    """(custom optimizer, its Keras twin) under the rule's translation, with the settings
    under which the two compute the same numbers (``KerasTwin.equal_when``)."""
    hp = {**registry.lab(rule.name).test_arguments, **rule.keras.fixed, **rule.keras.equal_when}
    class_name, kwargs = rule.keras_arguments(hp)
    return rule.load_class()(**hp), getattr(keras.optimizers, class_name)(**kwargs)


# Keras stores η*(1-a) as its float32 learning rate where we store η, ~1e-7 relative apart:
# the weights drift apart by that fraction of the path they travel (~1e-6 absolute here).
EQUIVALENCE_TOLERANCE = {"float32": (1e-5, 1e-5), "float64": (1e-6, 3e-6)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(TWINS))
@pytest.mark.slow
def test_equals_keras_builtin_under_mapping(name, dtype):
    if dtype not in TWINS[name].keras.dtypes:
        pytest.skip(f"keras.optimizers.{TWINS[name].keras.class_name} does not run in {dtype}")
    ours, theirs = twin_pair(TWINS[name])
    init, grads = random_problem(dtype, seed=3)
    actual = run_keras(ours, init, grads)
    expected = run_keras(theirs, init, grads)
    rtol, atol = EQUIVALENCE_TOLERANCE[dtype]
    assert_weights_close(actual, [np.float64(e) for e in expected], rtol, atol)


def test_keras_builtins_differ_without_the_mapping():
    """The mapping matters: the naive translations are measurably different."""
    init, grads = random_problem("float64", steps=10, seed=3)
    pairs = [
        (co.Momentum(0.1, momentum=0.9), keras.optimizers.SGD(0.1, momentum=0.9)),
        (co.AdaGrad(0.1, epsilon=0.0), keras.optimizers.Adagrad(0.1, epsilon=0.0)),
        (co.RMSProp(0.01, epsilon=1e-3), keras.optimizers.RMSprop(0.01, epsilon=1e-3)),
        (co.Adam(0.01, epsilon=1e-3), keras.optimizers.Adam(0.01, epsilon=1e-3)),
    ]
    for ours, theirs in pairs:
        ours_end, theirs_end = run_keras(ours, init, grads), run_keras(theirs, init, grads)
        assert max_abs_deviation(ours_end, theirs_end) > 1e-4


@pytest.mark.parametrize("beta_1,beta_2", [(0.9, 0.999), (0.5, 0.75)])
def test_adam_bias_correction_first_steps(beta_1, beta_2):
    """With a constant gradient and δ=0, the corrected step is exactly lr*sign(g) and the
    uncorrected one is ``(1-ρ1^t)/sqrt(1-ρ2^t)`` times it: at t=1 ``(1-ρ1)/sqrt(1-ρ2)``."""
    lr, g = 0.01, np.array([0.3, -2.0, 5.0])
    kwargs = dict(learning_rate=lr, beta_1=beta_1, beta_2=beta_2, epsilon=0.0)
    corrected = co.Adam(**kwargs)
    uncorrected = co.Adam(**kwargs, bias_correction=False)
    w_c = keras.Variable(np.zeros(3))
    w_u = keras.Variable(np.zeros(3))
    for t in range(1, 6):
        before_c, before_u = w_c.numpy(), w_u.numpy()
        corrected.apply_gradients([(tf.constant(g), w_c)])
        uncorrected.apply_gradients([(tf.constant(g), w_u)])
        step_c, step_u = before_c - w_c.numpy(), before_u - w_u.numpy()
        np.testing.assert_allclose(step_c, float32_rounded(lr) * np.sign(g), rtol=1e-12)
        ratio = (1 - beta_1**t) / np.sqrt(1 - beta_2**t)
        np.testing.assert_allclose(step_u / step_c, ratio, rtol=1e-12)
    # Step 1 in words: (1-0.9)/sqrt(1-0.999) = 3.162...: the uncorrected first step is
    # *larger* for these defaults, because r is shrunk more than v.

    # And for random gradients the uncorrected optimizer follows the uncorrected reference.
    init, grads = random_problem("float64", steps=10, seed=4)
    actual = run_keras(co.Adam(**kwargs, bias_correction=False), init, grads)
    ref = reference.Adam(float32_rounded(lr), beta_1, beta_2, 0.0, bias_correction=False)
    assert_weights_close(actual, run_reference(ref, init, grads), 1e-12, 1e-12)


# ------------------------------------------------------------------ argument checks

INVALID_ARGUMENTS = [
    # (class, arguments, the argument named, the value as written, the valid range)
    (co.SGD, {"learning_rate": -0.1}, "learning_rate", "-0.1", "[0, inf)"),
    (co.Adam, {"learning_rate": -1}, "learning_rate", "-1.0", "[0, inf)"),
    (co.Momentum, {"momentum": 1.0}, "momentum", "1.0", "[0, 1)"),
    (co.Momentum, {"momentum": -0.1}, "momentum", "-0.1", "[0, 1)"),
    (co.Nesterov, {"momentum": 1.5}, "momentum", "1.5", "[0, 1)"),
    (co.RMSProp, {"rho": 1.0}, "rho", "1.0", "[0, 1)"),
    (co.RMSProp, {"rho": -0.5}, "rho", "-0.5", "[0, 1)"),
    (co.Adam, {"beta_1": 1.0}, "beta_1", "1.0", "[0, 1)"),
    (co.Adam, {"beta_1": -0.1}, "beta_1", "-0.1", "[0, 1)"),
    (co.Adam, {"beta_2": 1.0}, "beta_2", "1.0", "[0, 1)"),
    (co.Adam, {"beta_2": 2.0}, "beta_2", "2.0", "[0, 1)"),
    (co.AdaGrad, {"epsilon": -1e-8}, "epsilon", "-1e-08", "[0, inf)"),
    (co.RMSProp, {"epsilon": -1.0}, "epsilon", "-1.0", "[0, inf)"),
    (co.Adam, {"epsilon": -1e-7}, "epsilon", "-1e-07", "[0, inf)"),
    (co.Momentum, {"learning_rate": float("nan")}, "learning_rate", "nan", "[0, inf)"),
    (co.SGD, {"learning_rate": float("inf")}, "learning_rate", "inf", "[0, inf)"),
]


@pytest.mark.parametrize(
    "cls,kwargs,name,value,valid", INVALID_ARGUMENTS, ids=lambda x: getattr(x, "__name__", None)
)
def test_invalid_hyperparameter_names_argument_value_and_range(cls, kwargs, name, value, valid):
    with pytest.raises(ValueError) as info:
        cls(**kwargs)
    message = str(info.value)
    assert f"{name}={value}" in message
    assert valid in message


def test_invalid_clipping_arguments(optimizer_case):
    with pytest.raises(ValueError, match=r"clip_mode='abs'.*norm, sign"):
        optimizer_case.make(clip_mode="abs")
    for threshold in (0, -1.0):
        with pytest.raises(ValueError) as info:
            optimizer_case.make(clip_threshold=threshold)
        assert f"clip_threshold={float(threshold)!r}" in str(info.value)
        assert "(0, inf)" in str(info.value)


@pytest.mark.parametrize("value", ["0.1", True, None, [0.1]], ids=repr)
def test_non_numbers_are_rejected(optimizer_case, value):
    with pytest.raises(ValueError, match="learning_rate must be a number"):
        optimizer_case.make(learning_rate=value)


@pytest.mark.parametrize(
    "learning_rate", [1, np.float32(0.1), np.int64(1), np.float64(0.25)], ids=repr
)
def test_ints_and_numpy_scalars_are_accepted(optimizer_case, learning_rate):
    optimizer = optimizer_case.make(learning_rate=learning_rate)
    stored = float(optimizer.learning_rate.numpy())
    np.testing.assert_allclose(stored, float(learning_rate), rtol=1e-7)
    variable = keras.Variable(np.ones(2))
    optimizer.apply_gradients([(tf.constant([1.0, -1.0], "float64"), variable)])
    assert np.all(np.isfinite(variable.numpy())) and not np.allclose(variable.numpy(), 1.0)
    json.dumps(keras.optimizers.serialize(optimizer))  # the config holds plain numbers


def test_other_hyperparameters_accept_ints_and_numpy_scalars():
    co.Momentum(np.float32(0.1), momentum=np.float64(0.5))
    co.Nesterov(1, momentum=0)
    co.AdaGrad(np.int64(1), epsilon=0)
    co.RMSProp(1, rho=np.float32(0.5), epsilon=np.int32(0))
    adam = co.Adam(1, beta_1=0, beta_2=np.float16(0.5), epsilon=0, clip_threshold=np.int64(2))
    assert isinstance(adam.beta_2, float) and isinstance(adam.clip_threshold, float)
    json.dumps(adam.get_config())


def test_schedules_are_accepted_and_followed(optimizer_case):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    optimizer = optimizer_case.make(learning_rate=schedule)
    assert isinstance(optimizer._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    optimizer_case.make(learning_rate=lambda: 0.05)  # a callable is passed through too

    if optimizer_case.name == "sgd":
        variable = keras.Variable(np.zeros(1))
        for _ in range(3):
            optimizer.apply_gradients([(tf.constant([1.0], "float64"), variable)])
        # 0.1 + 0.05 + 0.025
        np.testing.assert_allclose(variable.numpy(), [-0.175], rtol=1e-7)


# ----------------------------------------------------------------- config round trips


def _same_behaviour(a, b):
    init, grads = random_problem("float64", steps=3, seed=5, shapes=[(3,)])
    assert_weights_close(run_keras(a, init, grads), run_keras(b, init, grads), 0, 0)


@pytest.mark.parametrize(
    "extra",
    [{}, {"clip_threshold": 0.5, "clip_mode": "sign", "clipnorm": 2.0, "weight_decay": 0.01}],
    ids=["plain", "clipping"],
)
def test_config_round_trip(optimizer_case, extra):
    try:
        optimizer = optimizer_case.make(**extra)
    except ValueError as refusal:  # Schedule-Free refuses Keras's decay of y alone
        assert "use decoupled_weight_decay" in str(refusal)
        extra = {k: v for k, v in extra.items() if k != "weight_decay"}
        optimizer = optimizer_case.make(**extra)
    config = optimizer.get_config()
    for key, value in {**optimizer_case.kwargs, **extra}.items():
        if isinstance(value, str):  # pytest.approx refuses non-numbers (pytest >= 9.1)
            assert config[key] == value, key
        else:
            assert config[key] == pytest.approx(value, rel=1e-7), key
    restored = optimizer_case.cls.from_config(config)
    assert type(restored) is optimizer_case.cls
    assert restored.get_config() == config
    _same_behaviour(optimizer, restored)


def test_serialize_deserialize_by_registered_name(optimizer_case):
    optimizer = optimizer_case.make(clip_threshold=1.5)
    serialized = keras.optimizers.serialize(optimizer)
    assert serialized["registered_name"] == f"custom_optimizers>{optimizer_case.cls.__name__}"
    serialized = json.loads(json.dumps(serialized))  # as it would come back from a file
    restored = keras.optimizers.deserialize(serialized)
    # Not Keras's own SGD/Adam of the same class name.
    assert type(restored) is optimizer_case.cls
    assert restored.get_config() == optimizer.get_config()
    _same_behaviour(optimizer, restored)


def test_config_round_trip_with_schedule(optimizer_case):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    optimizer = optimizer_case.make(learning_rate=schedule)
    restored = keras.optimizers.deserialize(
        json.loads(json.dumps(keras.optimizers.serialize(optimizer)))
    )
    assert isinstance(restored._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    assert restored._learning_rate.get_config() == schedule.get_config()
    _same_behaviour(optimizer, restored)


# ------------------------------------------------------------------------- clipping


def test_clip_gradient_by_hand():
    g = tf.constant([3.0, -4.0])  # norm 5
    # norm mode: g * u/||g|| = [3, -4] / 5
    np.testing.assert_allclose(co.clip_gradient(g, 1.0, "norm").numpy(), [0.6, -0.8], rtol=1e-7)
    # sign mode, the slide's rule: sign(g) * u
    np.testing.assert_allclose(co.clip_gradient(g, 1.0, "sign").numpy(), [1.0, -1.0])
    np.testing.assert_allclose(co.clip_gradient(g, 2.5, "sign").numpy(), [2.5, -2.5])
    for mode in co.CLIP_MODES:
        # ||g|| <= u: returned unchanged, bit for bit, including ||g|| == u exactly.
        for threshold in (5.0, 6.0, 1e9):
            np.testing.assert_array_equal(co.clip_gradient(g, threshold, mode).numpy(), g.numpy())
    # One ulp above u is rounding, not "exceeds" (Keras's clipnorm leaves such norms);
    # a relative 1e-4 above u is clipped.
    for dtype in ("float32", "float64"):
        u = np.linalg.norm(np.array([3.0, -4.0], dtype)) / np.nextafter(np.array(1, dtype), 2)
        g_ulp = tf.constant([3.0, -4.0], dtype)
        assert float(tf.norm(g_ulp)) > float(u)
        np.testing.assert_array_equal(co.clip_gradient(g_ulp, float(u), "sign").numpy(), g_ulp)
        u = 5.0 / (1 + 1e-4)
        np.testing.assert_allclose(co.clip_gradient(g_ulp, u, "sign").numpy(), [u, -u])
    zero = tf.zeros(3)
    for mode in co.CLIP_MODES:
        np.testing.assert_array_equal(co.clip_gradient(zero, 1.0, mode).numpy(), np.zeros(3))


def test_clip_gradient_under_xla():
    clip = tf.function(co.clip_gradient, jit_compile=True)
    g = tf.constant([[3.0, -4.0], [0.0, 0.0]])
    np.testing.assert_allclose(clip(g, 1.0, "norm").numpy(), [[0.6, -0.8], [0, 0]], rtol=1e-6)
    np.testing.assert_allclose(clip(g, 1.0, "sign").numpy(), [[1, -1], [0, 0]])


@pytest.mark.slow
def test_threshold_not_reached_leaves_update_untouched(optimizer_case):
    init, grads = random_problem("float32", steps=10, seed=6)
    largest = max(np.linalg.norm(g) for step in grads for g in step)
    plain = run_keras(optimizer_case.make(), init, grads)
    for clip_mode in co.CLIP_MODES:
        optimizer = optimizer_case.make(clip_threshold=largest * 1.01, clip_mode=clip_mode)
        assert_weights_close(run_keras(optimizer, init, grads), plain, 0, 0)


def _some_norms_exceed(grads, u, factor=1.5):
    norms = [np.linalg.norm(g) for step in grads for g in step]
    return sum(n > factor * u for n in norms) >= len(norms) // 2


@pytest.mark.parametrize("clip_mode", co.CLIP_MODES)
@pytest.mark.slow
def test_no_double_clipping_with_keras_clipnorm(optimizer_case, clip_mode):
    """Keras's ``clipnorm=u`` leaves every tensor with norm u (to rounding: up to about one
    ulp above u); the lecture's clipping at the same u must then do nothing, in either mode.
    u=1.7 is a threshold where that rounding often lands above u."""
    u = 1.7
    init, grads = random_problem("float32", steps=10, seed=7)
    assert _some_norms_exceed(grads, u)  # Keras's clipping acts in most steps
    both = run_keras(
        optimizer_case.make(clipnorm=u, clip_threshold=u, clip_mode=clip_mode), init, grads
    )
    keras_only = run_keras(optimizer_case.make(clipnorm=u), init, grads)
    assert_weights_close(both, keras_only, 1e-5, 1e-6)
    if clip_mode == "norm":  # per-tensor norm clipping is what clipnorm does
        ours_only = run_keras(optimizer_case.make(clip_threshold=u), init, grads)
        assert_weights_close(both, ours_only, 1e-5, 1e-6)


@pytest.mark.parametrize("clip_mode", co.CLIP_MODES)
@pytest.mark.slow
def test_no_double_clipping_with_keras_global_clipnorm(optimizer_case, clip_mode):
    u = 1.7
    init, grads = random_problem("float32", steps=10, seed=8)
    assert _some_norms_exceed(grads, u)
    both = run_keras(
        optimizer_case.make(global_clipnorm=u, clip_threshold=u, clip_mode=clip_mode), init, grads
    )
    keras_only = run_keras(optimizer_case.make(global_clipnorm=u), init, grads)
    assert_weights_close(both, keras_only, 1e-5, 1e-6)
    # With one variable the global norm is the tensor's norm: its clipped norm is u (to
    # rounding) and the lecture's clipping must leave it; in norm mode it is the same rule.
    init1, grads1 = [init[2]], [[step[2]] for step in grads]
    one_global = run_keras(optimizer_case.make(global_clipnorm=u), init1, grads1)
    one_both = run_keras(
        optimizer_case.make(global_clipnorm=u, clip_threshold=u, clip_mode=clip_mode), init1, grads1
    )
    assert_weights_close(one_both, one_global, 1e-5, 1e-6)
    if clip_mode == "norm":
        one_ours = run_keras(optimizer_case.make(clip_threshold=u), init1, grads1)
        assert_weights_close(one_ours, one_global, 1e-5, 1e-6)


def test_clipping_applies_after_keras_clipvalue(optimizer_case):
    """clipvalue bounds elements, not the norm: the lecture's clipping still acts after it."""
    init, grads = random_problem("float64", steps=10, seed=9)
    actual = run_keras(optimizer_case.make(clipvalue=1.0, clip_threshold=1.5), init, grads)
    lr = float32_rounded(optimizer_case.kwargs["learning_rate"])
    ref = optimizer_case.reference(learning_rate=lr, clip_threshold=1.5)
    expected = run_reference(ref, init, [[np.clip(g, -1, 1) for g in step] for step in grads])
    assert_weights_close(actual, expected, 1e-12, 1e-12)


# ---------------------------------------------------------- effective learning rates


def test_effective_learning_rates_match_reference_state(adaptive_optimizer_case):
    case = adaptive_optimizer_case
    init, grads = random_problem("float64", steps=10, seed=10)
    optimizer = case.make()
    variables = [keras.Variable(w) for w in init]
    ref = case.reference(learning_rate=float32_rounded(case.kwargs["learning_rate"]))
    params = list(init)
    for step_grads in grads:
        optimizer.apply_gradients(zip([tf.constant(g) for g in step_grads], variables))
        params = ref.step(params, step_grads)
        rates = optimizer.effective_learning_rates()
        assert len(rates) == len(variables)
        for rate, expected, w in zip(rates, ref.effective_learning_rates(), init):
            assert tuple(rate.shape) == w.shape
            np.testing.assert_allclose(np.asarray(rate), expected, rtol=1e-12)


@pytest.mark.parametrize("name", [n for n, rule in TWINS.items() if rule.adaptive])
def test_keras_twin_reports_the_same_effective_learning_rates(name):
    """``experiments.core.optim.effective_learning_rates`` reads the Keras twin's state in its own
    conventions: where the two rules are equal, so are the rates."""
    from experiments.core.optim import effective_learning_rates

    ours, theirs = twin_pair(TWINS[name])
    init, grads = random_problem("float64", steps=5, seed=15)
    run_keras(ours, init, grads)
    run_keras(theirs, init, grads)
    for a, b in zip(effective_learning_rates(ours), effective_learning_rates(theirs)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6)


def _effective_rate_history(optimizer, gradient_scales):
    variable = keras.Variable(np.zeros(4))
    rng = np.random.default_rng(11)
    history = []
    for scale in gradient_scales:
        g = scale * rng.normal(size=4)
        optimizer.apply_gradients([(tf.constant(g), variable)])
        history.append(np.asarray(optimizer.effective_learning_rates()[0]))
    return np.array(history)


LARGE_THEN_SMALL = [10.0] * 10 + [0.01] * 20


def test_adagrad_effective_learning_rate_only_falls():
    history = _effective_rate_history(co.AdaGrad(0.1, epsilon=1e-3), LARGE_THEN_SMALL)
    # Large gradients then small ones: still no weight's rate ever rises.
    assert np.all(np.diff(history, axis=0) <= 0)
    assert np.all(history[-1] < history[0])


@pytest.mark.parametrize(
    "make",
    [
        lambda: co.RMSProp(0.01, rho=0.9, epsilon=1e-3),
        lambda: co.Adam(0.01, beta_2=0.9, epsilon=1e-3),
    ],
    ids=["rmsprop", "adam"],
)
def test_rmsprop_and_adam_effective_learning_rates_can_rise(make):
    history = _effective_rate_history(make(), LARGE_THEN_SMALL)
    # r forgets the large gradients: after 20 small ones (0.9^20 = 0.12 of r left) every
    # weight's rate has roughly tripled, and it rose at every one of those steps.
    assert np.all(history[-1] > 2.5 * history[9])
    assert np.all(np.diff(history[10:], axis=0) > 0)


# ------------------------------------------------------------------------ convergence

# name: (arguments, steps) chosen per optimizer; the tolerance is the same for all.
QUADRATIC_RUNS = {  # from (4, 3) to within 1e-3 of (1, -2)
    "sgd": ({"learning_rate": 0.2}, 100),
    "momentum": ({"learning_rate": 0.2, "momentum": 0.5}, 100),
    "nesterov": ({"learning_rate": 0.2, "momentum": 0.5}, 100),
    "adagrad": ({"learning_rate": 1.0}, 300),
    # constant-lr RMSProp/Adam circle the minimum at a radius ~ lr: a small lr, slow ρ
    "rmsprop": ({"learning_rate": 0.01, "rho": 0.99}, 1000),
    "adam": ({"learning_rate": 0.1, "beta_1": 0.9, "beta_2": 0.999}, 400),
}
ROSENBROCK_RUNS = {  # from (-1.2, 1) to within 2e-2 of (1, 1)
    "sgd": ({"learning_rate": 1.5e-3}, 10000),  # lr < 2/1002, the Hessian's top eigenvalue
    "momentum": ({"learning_rate": 3e-3, "momentum": 0.9}, 5000),
    "nesterov": ({"learning_rate": 3e-3, "momentum": 0.9}, 5000),
    "adagrad": ({"learning_rate": 0.5}, 7000),
    "rmsprop": ({"learning_rate": 1e-3, "rho": 0.9}, 7000),
    "adam": ({"learning_rate": 2e-2, "beta_1": 0.9, "beta_2": 0.999}, 3000),
}


@pytest.mark.parametrize("name", list(QUADRATIC_RUNS))
def test_converges_on_convex_quadratic(name):
    kwargs, steps = QUADRATIC_RUNS[name]
    w = minimize(rules.get(name).load_class()(**kwargs), quadratic, [4.0, 3.0], steps)
    np.testing.assert_allclose(w, QUADRATIC_MIN, atol=1e-3, rtol=0)


@pytest.mark.parametrize("name", list(ROSENBROCK_RUNS))
def test_gets_near_rosenbrock_minimum(name):
    kwargs, steps = ROSENBROCK_RUNS[name]
    w = minimize(rules.get(name).load_class()(**kwargs), rosenbrock, [-1.2, 1.0], steps)
    np.testing.assert_allclose(w, [1.0, 1.0], atol=2e-2, rtol=0)
