"""NAdam beyond the registry's shared tests: a step by hand, the momentum schedule, the
closed-form product of the momenta, Keras's ψ = 1, convergence. (Reference, clipping,
Keras integration and twin tests run for every rule from the registry.)"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir

import custom_optimizers as co
from custom_optimizers import reference
from experiments.core.checks import ConfigError
from experiments.train.config import validate
from helpers import (QUADRATIC_MIN, float32_rounded, max_abs_deviation, minimize, quadratic,
                     random_problem, rosenbrock, run_keras)

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "graph"])
def test_one_step_by_hand(compiled):
    # ψ = 0: μ(t) = ρ1/2 = 0.25 for every t, Π_1 = 0.25, Π_2 = 0.0625.
    # v = 0.5 g = [0.25, -0.5];  r = 0.25 g² = [0.0625, 0.25];  sqrt(r/(1-0.75)) = [0.5, 1]
    # v̂ = 0.25 v / 0.9375 + 0.75 g / 0.75 = v/3.75 + g = [17/30, -17/15]
    # W - 0.1 v̂ / (0.5 + [0.5, 1]) = [1 - 1.7/30, -2 + 1.7/22.5] = [283/300, -433/225]
    optimizer = co.NAdam(learning_rate=0.1, beta_1=0.5, beta_2=0.75, epsilon=0.5,
                         momentum_decay=0.0)
    variable = keras.Variable(np.array([1.0, -2.0]), dtype="float64")
    optimizer.build([variable])
    apply = lambda g: optimizer.apply_gradients([(g, variable)])  # noqa: E731
    apply = tf.function(apply) if compiled else apply
    apply(tf.constant([0.5, -1.0], dtype="float64"))
    np.testing.assert_allclose(variable.numpy(), [283 / 300, -433 / 225], rtol=1e-8, atol=0)
    np.testing.assert_allclose(optimizer.momentums[0].numpy(), [0.25, -0.5], rtol=1e-15)
    np.testing.assert_allclose(optimizer.velocities[0].numpy(), [0.0625, 0.25], rtol=1e-15)


@pytest.mark.parametrize("psi", [0.0, 0.004, 1.0, 50.0])
def test_closed_form_momentum_product_equals_the_running_product(psi):
    optimizer = co.NAdam(beta_1=0.95, momentum_decay=psi)
    ref = reference.NAdam(0.001, 0.95, 0.999, 1e-7, psi)
    steps = np.array([1, 2, 3, 10, 100, 1000, 3000])
    product, expected = 1.0, {}
    for t in range(1, steps[-1] + 1):
        product *= ref.mu(t)
        expected[t] = product
    for t in steps:
        value = float(optimizer._momentum_product(tf.constant(float(t), tf.float64)))
        np.testing.assert_allclose(value, expected[t], rtol=1e-13, atol=1e-300)


def test_momentum_warms_up_slowly_with_the_default_decay():
    """μ(t) starts near ρ1/2 and the gap to ρ1 halves every 17/ψ steps."""
    ref = reference.NAdam(0.001, 0.9, 0.999, 1e-7)  # ψ = 0.004
    assert ref.mu(1) == pytest.approx(0.9 * (1 - 0.5 * 0.96 ** 0.004))
    assert ref.mu(1) < 0.451 and ref.mu(4245) == pytest.approx(0.9 * 0.75, rel=1e-3)
    keras_like = reference.NAdam(0.001, 0.9, 0.999, 1e-7, momentum_decay=1.0)
    assert keras_like.mu(17) == pytest.approx(0.9 * 0.75, rel=1e-2)


def test_keras_nadam_is_psi_one_not_the_default():
    """Keras's Nadam equals NAdam(momentum_decay=1) (δ sits alike) and measurably differs
    from the default ψ = 0.004 (Dozat, PyTorch): the twin's config fixes ψ = 1."""
    init, grads = random_problem("float64", steps=120, seed=12, shapes=[(50,)])
    hp = {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-3}
    theirs = run_keras(keras.optimizers.Nadam(**hp), init, grads)
    same = run_keras(co.NAdam(**hp, momentum_decay=1.0), init, grads)
    default = run_keras(co.NAdam(**hp), init, grads)
    travelled = max_abs_deviation(init, [np.float64(w) for w in theirs])
    # Keras multiplies its running product with 0.96 ** t taken in float32 (0.96 rounded,
    # 2e-8 relative): 5e-8 of the distance travelled apart after 120 steps, in float64.
    assert max_abs_deviation(same, [np.float64(w) for w in theirs]) < 1e-6 * travelled
    assert max_abs_deviation(default, [np.float64(w) for w in theirs]) > 0.02 * travelled


@pytest.mark.slow
def test_matches_reference_with_every_decay():
    init, grads = random_problem("float64", steps=30, seed=13)
    for psi in (0.0, 1.0, 7.0):
        lr = float32_rounded(0.01)
        actual = run_keras(co.NAdam(0.01, 0.8, 0.99, 1e-3, momentum_decay=psi), init, grads)
        ref = reference.NAdam(lr, 0.8, 0.99, 1e-3, momentum_decay=psi)
        params = [np.asarray(w, np.float64) for w in init]
        for step in grads:
            params = ref.step(params, step)
        for a, e in zip(actual, params):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


def test_keras_option_refuses_another_decay():
    from experiments.train.config import register_schemas as register_train_schemas
    register_train_schemas()

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["optimizer=keras_nadam"])
        assert cfg.optimizer.momentum_decay == 1.0
        validate(cfg)
        cfg = compose("train", overrides=["optimizer=keras_nadam",
                                          "optimizer.momentum_decay=0.004"])
    with pytest.raises(ConfigError, match=r"^optimizer.momentum_decay=0.004 has no Keras "
                                          r"counterpart: .*Nadam fixes momentum_decay=1.0"):
        validate(cfg)


def test_converges_on_convex_quadratic_and_near_rosenbrock_minimum():
    w = minimize(co.NAdam(learning_rate=0.1), quadratic, [4.0, 3.0], 400)
    np.testing.assert_allclose(w, QUADRATIC_MIN, atol=1e-3, rtol=0)
    w = minimize(co.NAdam(learning_rate=2e-2), rosenbrock, [-1.2, 1.0], 5000)
    np.testing.assert_allclose(w, [1.0, 1.0], atol=2e-2, rtol=0)
