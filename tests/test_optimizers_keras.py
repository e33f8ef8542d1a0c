"""The lecture's optimizers inside Keras: fit, XLA, saving, sparse gradients, mixed
precision, tf.distribute and the base optimizer's own keyword arguments.

Models and data are tiny and runs a few steps long: these tests are about the plumbing,
``test_optimizers_math.py`` about the numbers.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from custom_optimizers import rules
from experiments.core import registry

REPO_ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- helpers


def regression_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * rng.normal(size=(n, 1))).astype(
        "float32"
    )
    return x, y


def make_model(weights=None):
    """Dense(8, tanh) -> Dense(1); ``weights`` (a ``get_weights()`` list) fixes the start."""
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
    )
    if weights is not None:
        model.set_weights(weights)
    return model


@pytest.fixture(scope="module")
def initial_weights():
    keras.utils.set_random_seed(0)
    return make_model().get_weights()


def mse(weights, x, y):
    """The model's loss computed in NumPy from its weights (no extra Keras graph to build)."""
    k1, b1, k2, b2 = weights
    return float(np.mean((np.tanh(x @ k1 + b1) @ k2 + b2 - y) ** 2))


# Learning rates for the fit tests: a few epochs of a tiny model must halve the loss (the
# adaptive ones move each weight by about lr per step); a rule not listed uses the default.
FIT_LEARNING_RATES = {"sgd": 0.1, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.3,
                      "rmsprop": 0.03, "schedule_free_adamw": 0.2, "muon": 0.3}
FIT_LEARNING_RATE = 0.05


def fit_optimizer(case, **overrides):
    return case.make(learning_rate=FIT_LEARNING_RATES.get(case.name, FIT_LEARNING_RATE),
                     **overrides)


def fit(model, optimizer, x, y, epochs, jit_compile=False):
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    return model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0).history["loss"]


def assert_weights_close(actual, expected, rtol, atol=0.0):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)


def float32_rounded(value):
    return float(np.float32(value))


# ------------------------------------------------------------------------ fit and XLA


@pytest.fixture
def xla_allowed():
    """Op determinism off for the test: Keras's fit silently drops ``jit_compile=True``
    while it is on, and another test in the same process (a deterministic training run)
    may have switched it on. Restored afterwards. (Keras reads the same private flag.)"""
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield
    if was:
        tf_config.enable_op_determinism()


@pytest.mark.slow
def test_fit_reduces_loss_with_and_without_jit(optimizer_case, initial_weights, xla_allowed):
    """model.compile(optimizer=...) + fit trains, and XLA gives the same weights."""
    x, y = regression_data()
    initial_loss = mse(initial_weights, x, y)
    runs = {}
    for jit in (False, True):
        model = make_model(initial_weights)
        # clip_threshold puts the lecture's clipping (an ops.where) under XLA too.
        optimizer = fit_optimizer(optimizer_case, clip_threshold=5.0)
        losses = fit(model, optimizer, x, y, epochs=3, jit_compile=jit)
        assert model.jit_compile is jit  # Keras did not fall back to no XLA
        assert all(np.isfinite(losses))
        final_loss = mse(model.get_weights(), x, y)
        assert final_loss < 0.5 * initial_loss, (jit, initial_loss, losses, final_loss)
        assert int(model.optimizer.iterations.numpy()) == 3 * 4
        runs[jit] = model.get_weights()
    # XLA fuses and reorders float32 arithmetic: agreement to rounding, not bit for bit.
    assert_weights_close(runs[True], runs[False], rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------- save and load


def _optimizer_state(optimizer):
    """Name (without the layer's name, which a loaded model may number anew) and value."""
    return [(v.name, np.array(v.numpy())) for v in optimizer.variables]


@pytest.mark.slow
def test_save_and_load_restores_optimizer_state(optimizer_case, initial_weights, tmp_path):
    x, y = regression_data()
    model = make_model(initial_weights)
    fit(model, fit_optimizer(optimizer_case, clip_threshold=5.0), x, y, epochs=2)
    path = tmp_path / "model.keras"
    model.save(path)

    loaded = keras.models.load_model(path)
    restored = loaded.optimizer
    assert type(restored) is optimizer_case.cls
    assert restored.get_config() == model.optimizer.get_config()
    assert int(restored.iterations.numpy()) == 2 * 4
    saved_state, loaded_state = _optimizer_state(model.optimizer), _optimizer_state(restored)
    # iterations, learning rate and every slot variable (velocity, accumulator, moments):
    # one per state array of the rule's reference, for each of the model's 4 variables,
    # and the rule's scalars (Schedule-Free's η_max and Σ η_max²)
    ref = rules.get(optimizer_case.name).reference
    slots = getattr(ref, "slot_names", lambda shape: ref.state_names)  # Muon: per shape
    expected_count = (2 + sum(len(slots(v.shape)) for v in model.trainable_variables)
                      + len(getattr(ref, "scalar_state_names", ())))
    assert len(saved_state) == len(loaded_state) == expected_count
    for (name, value), (loaded_name, loaded_value) in zip(saved_state, loaded_state):
        # e.g. "dense_kernel_velocity" may come back as "sequential_dense_kernel_velocity"
        assert loaded_name.rsplit("_", 1)[-1] == name.rsplit("_", 1)[-1]
        np.testing.assert_array_equal(loaded_value, value, err_msg=name)
    slots = [value for _, value in saved_state if value.ndim > 0]
    assert all(np.any(value != 0) for value in slots)  # the state is not just zeros

    # Continued training of the loaded model equals the uninterrupted original.
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert int(restored.iterations.numpy()) == 4 * 4
    assert_weights_close(loaded.get_weights(), model.get_weights(), rtol=1e-6, atol=1e-7)


# -------------------------------------------------------------------- sparse gradients

# Index batches of one length (one trace), with repeated rows; row 9 is never looked up.
INDEX_BATCHES = [[1, 3, 1, 1, 7, 0], [2, 2, 5, 3, 3, 3], [0, 4, 6, 8, 1, 1], [5, 5, 5, 5, 5, 2]]


@pytest.mark.parametrize("clip_threshold", [None, 0.5], ids=["plain", "clipped"])
def test_embedding_sparse_gradient_equals_dense(optimizer_case, clip_threshold):
    keras.utils.set_random_seed(1)
    layer = keras.layers.Embedding(10, 3)
    layer.build()
    targets = tf.constant(np.random.default_rng(1).normal(size=(6, 3)), "float32")
    sparse_var = layer.embeddings
    dense_var = keras.Variable(sparse_var.numpy())
    # Muon sends embeddings to AdamW; here both variables take its 2-D (Muon) path.
    extra = ({"exclude_embeddings": False}
             if "exclude_embeddings" in inspect.signature(optimizer_case.cls).parameters else {})
    sparse_opt = optimizer_case.make(clip_threshold=clip_threshold, **extra)
    dense_opt = optimizer_case.make(clip_threshold=clip_threshold, **extra)
    sparse_opt.build([sparse_var])
    dense_opt.build([dense_var])
    ref = optimizer_case.reference(
        learning_rate=float32_rounded(optimizer_case.kwargs["learning_rate"]),
        clip_threshold=clip_threshold,
    )
    ref_params = [sparse_var.numpy().astype(np.float64)]

    @tf.function
    def apply(sparse_grad, dense_grad):
        sparse_opt.apply_gradients([(sparse_grad, sparse_var)])
        dense_opt.apply_gradients([(dense_grad, dense_var)])

    rows_before_last = ref_before_last = None
    for indices in INDEX_BATCHES:
        rows_before_last, ref_before_last = sparse_var.numpy(), ref_params[0]
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(tf.constant(indices)) - targets))
        (grad,) = tape.gradient(loss, [layer.embeddings.value])
        assert isinstance(grad, tf.IndexedSlices)
        assert len(set(grad.indices.numpy())) < len(indices)  # duplicates reach the optimizer
        dense = tf.convert_to_tensor(grad)
        apply(grad, dense)
        ref_params = ref.step(ref_params, [dense.numpy()])

    # Duplicate rows add up in either form (scatter or dense) up to float32 rounding.
    np.testing.assert_allclose(sparse_var.numpy(), dense_var.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sparse_var.numpy(), ref_params[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(sparse_var.numpy()[9], dense_var.numpy()[9])  # never looked up
    # Row 4 is looked up only in the third batch. With a first-moment average its row keeps
    # moving in the fourth step (the dense rule), which a lazy sparse update would skip:
    # it moves exactly when the reference's row moves (momentum, Nesterov, Adam, ...).
    moved = not np.array_equal(sparse_var.numpy()[4], rows_before_last[4])
    assert moved == (not np.array_equal(ref_params[0][4], ref_before_last[4]))


# -------------------------------------------------------------------- mixed precision


@pytest.fixture
def mixed_float16_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.slow
def test_mixed_float16_model_trains(optimizer_case, initial_weights, mixed_float16_policy):
    x, y = regression_data()
    model = make_model(initial_weights)
    assert model.layers[0].compute_dtype == "float16"
    assert model.layers[0].kernel.dtype == "float32"
    model.compile(optimizer=fit_optimizer(optimizer_case), loss="mse", jit_compile=False)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    inner = model.optimizer.inner_optimizer
    assert type(inner) is optimizer_case.cls
    initial_loss = mse(initial_weights, x, y)
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    final_loss = mse(model.get_weights(), x, y)
    assert np.isfinite(final_loss) and final_loss < 0.5 * initial_loss
    # The loss scale starts at 2**15: the first steps overflow in float16 and are skipped
    # (the scale halves each time) without touching the state; the rest are applied.
    assert 8 <= int(inner.iterations.numpy()) < 3 * 4
    assert float(model.optimizer.dynamic_scale.numpy()) < 2.0**15
    # Every slot in float32 (a rule's scalars, e.g. Schedule-Free's float64 Σ η_max², aside)
    assert all(v.dtype == "float32" for v in inner.variables if len(v.shape) > 0)


# ------------------------------------------------------------------- tf.distribute

DISTRIBUTED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import keras, numpy as np
    import custom_optimizers as co

    cases = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]])).astype("float32")

    def make_model():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh"),
                                 keras.layers.Dense(1)])

    keras.utils.set_random_seed(0)
    init = make_model().get_weights()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"replicas": strategy.num_replicas_in_sync}

    def train(name, kwargs, distributed):
        cls = getattr(co, name)
        scope = strategy.scope() if distributed else tf.distribute.get_strategy().scope()
        with scope:
            model = make_model()
            model.set_weights(init)
            model.compile(optimizer=cls(**kwargs), loss="mse", jit_compile=False)
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return model.get_weights(), int(model.optimizer.iterations.numpy())

    for name, kwargs in cases.items():
        single, it1 = train(name, kwargs, False)
        multi, it2 = train(name, kwargs, True)
        moved = max(float(np.max(np.abs(a - b))) for a, b in zip(single, init))
        dev = max(float(np.max(np.abs(a - b))) for a, b in zip(single, multi))
        result[name] = {"deviation": dev, "moved": moved, "iterations": [it1, it2]}
    print("RESULT " + json.dumps(result))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_matches_single_device(tmp_path):
    """Two logical CPUs in a subprocess (they must be set before TF starts): the update
    equals the single-device one, clipping included (it acts on the summed gradient; a
    clip of each replica's half before summing would differ, as u is always exceeded)."""
    cases = {rule.load_class().__name__: {**registry.lab(rule.name).test_arguments, "clip_threshold": 0.5}
             for rule in rules.all_rules()}
    script = tmp_path / "distributed.py"
    script.write_text(DISTRIBUTED_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(cases)],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2
    for name in cases:
        entry = result[name]
        assert entry["iterations"] == [8, 8], name
        assert entry["moved"] > 1e-2, name
        # The replicas' gradients are summed in another order: float32 rounding only.
        assert entry["deviation"] < 1e-5, (name, entry)


# ------------------------------------------------- the base optimizer's own arguments


def _random_steps(steps, seed, shapes=((3,), (2, 2))):
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=s) for s in shapes]
    grads = [[rng.normal(size=s) for s in shapes] for _ in range(steps)]
    return init, grads


def _reference_for(case):
    return case.reference(learning_rate=float32_rounded(case.kwargs["learning_rate"]))


def test_weight_decay_is_applied_before_the_rule(optimizer_case):
    """Keras's decoupled decay ``W -= lr*wd*W`` first, then the lecture's rule."""
    weight_decay = 0.1
    init, grads = _random_steps(5, seed=2)
    try:
        optimizer = optimizer_case.make(weight_decay=weight_decay)
    except ValueError as refusal:  # Schedule-Free: y alone cannot be decayed; its own λ
        assert "use decoupled_weight_decay" in str(refusal)
        return
    variables = [keras.Variable(w) for w in init]
    for step in grads:
        optimizer.apply_gradients(zip([tf.constant(g) for g in step], variables))

    ref = _reference_for(optimizer_case)
    lr = float32_rounded(optimizer_case.kwargs["learning_rate"])
    params = list(init)
    for step in grads:
        params = ref.step([p - p * float32_rounded(weight_decay) * lr for p in params], step)
    assert_weights_close([v.numpy() for v in variables], params, rtol=1e-12, atol=1e-12)
    without = _reference_for(optimizer_case)
    plain = list(init)
    for step in grads:
        plain = without.step(plain, step)
    assert max(np.max(np.abs(a - b)) for a, b in zip(params, plain)) > 1e-3


def test_use_ema_tracks_the_average_of_the_weights(optimizer_case):
    """``use_ema``: the average follows ``avg = m*avg + (1-m)*W`` (``avg = W`` after step 1)
    of the lecture rule's trajectory, and ``finalize_variable_values`` writes it back."""
    ema_momentum = 0.8
    init, grads = _random_steps(6, seed=3)
    optimizer = optimizer_case.make(use_ema=True, ema_momentum=ema_momentum)
    variables = [keras.Variable(w) for w in init]
    for step in grads:
        optimizer.apply_gradients(zip([tf.constant(g) for g in step], variables))

    ref = _reference_for(optimizer_case)
    params, average = list(init), None
    for step in grads:
        params = ref.step(params, step)
        average = (
            [p.copy() for p in params]
            if average is None
            else [ema_momentum * a + (1 - ema_momentum) * p for a, p in zip(average, params)]
        )
    assert_weights_close([v.numpy() for v in variables], params, rtol=1e-12, atol=1e-12)
    optimizer.finalize_variable_values(variables)
    assert_weights_close([v.numpy() for v in variables], average, rtol=1e-6, atol=1e-12)


def test_gradient_accumulation_steps(optimizer_case):
    """Three calls make one step of the rule with the mean gradient; t counts real steps."""
    steps = 3
    init, grads = _random_steps(3 * steps, seed=4)
    optimizer = optimizer_case.make(gradient_accumulation_steps=steps)
    variables = [keras.Variable(w) for w in init]

    @tf.function
    def apply(step):
        optimizer.apply_gradients(zip(step, variables))

    for call, step in enumerate(grads, start=1):
        before = [v.numpy() for v in variables]
        apply([tf.constant(g) for g in step])
        changed = any(np.any(v.numpy() != b) for v, b in zip(variables, before))
        assert changed == (call % steps == 0), call
    assert int(optimizer.iterations.numpy()) == 3

    ref = _reference_for(optimizer_case)
    params = list(init)
    for k in range(0, len(grads), steps):
        mean = [np.mean([grads[k + j][i] for j in range(steps)], axis=0) for i in range(len(init))]
        params = ref.step(params, mean)
    assert_weights_close([v.numpy() for v in variables], params, rtol=1e-12, atol=1e-12)


def test_clipnorm_and_clipvalue_pass_through(optimizer_case):
    optimizer = optimizer_case.make(clipnorm=1.0)
    assert optimizer.clipnorm == 1.0
    assert optimizer_case.make(clipvalue=0.5).clipvalue == 0.5
    assert optimizer_case.make(global_clipnorm=2.0).global_clipnorm == 2.0
    assert optimizer_case.make(name="custom").name == "custom"
