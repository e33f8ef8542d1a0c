"""Lion beyond the registry's shared tests: two steps by hand, every weight moving by
exactly η, Keras's refusal of β1 = 0, convergence. (Reference, clipping, Keras
integration and twin tests run for every rule from the registry.)"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir

import custom_optimizers as co
from experiments.core.checks import ConfigError
from experiments.train.config import validate
from helpers import QUADRATIC_MIN, minimize, quadratic, random_problem, rosenbrock

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "graph"])
@pytest.mark.slow
def test_two_steps_by_hand(compiled):
    # Step 1, m = 0: u = sign(0.5 g) = [1, -1];  W = [1 - 0.1, -2 + 0.1];  m = 0.25 g
    # Step 2, g = [-0.1, -1]: β1 m + (1-β1) g = [0.0625 - 0.05, -0.125 - 0.5]: u = [1, -1]
    # (the momentum outvotes the new gradient in x);  m = 0.75 m + 0.25 g
    optimizer = co.Lion(learning_rate=0.1, beta_1=0.5, beta_2=0.75)
    variable = keras.Variable(np.array([1.0, -2.0]), dtype="float64")
    optimizer.build([variable])
    apply = lambda g: optimizer.apply_gradients([(g, variable)])  # noqa: E731
    apply = tf.function(apply) if compiled else apply
    apply(tf.constant([0.5, -1.0], dtype="float64"))
    np.testing.assert_allclose(variable.numpy(), [0.9, -1.9], rtol=1e-8)
    np.testing.assert_allclose(optimizer.momentums[0].numpy(), [0.125, -0.25], rtol=1e-15)
    apply(tf.constant([-0.1, -1.0], dtype="float64"))
    np.testing.assert_allclose(variable.numpy(), [0.8, -1.8], rtol=1e-8)
    np.testing.assert_allclose(optimizer.momentums[0].numpy(), [0.06875, -0.4375], rtol=1e-15)


def test_every_weight_moves_by_exactly_the_learning_rate():
    init, grads = random_problem("float64", steps=1, seed=14, shapes=[(1000,)])
    w = keras.Variable(init[0])
    co.Lion(learning_rate=0.125).apply_gradients([(tf.constant(grads[0][0]), w)])
    # The first direction is sign(g): W - 0.125 sign(g), bit for bit.
    np.testing.assert_array_equal(w.numpy(), init[0] - 0.125 * np.sign(grads[0][0]))


def test_keras_option_refuses_beta_1_zero():
    from experiments.train.config import register_schemas as register_train_schemas
    register_train_schemas()

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        validate(compose("train", overrides=["optimizer=lion", "optimizer.beta_1=0"]))
        cfg = compose("train", overrides=["optimizer=keras_lion", "optimizer.beta_1=0"])
    with pytest.raises(ConfigError, match=r"^optimizer.beta_1=0.0 has no Keras counterpart"):
        validate(cfg)


def test_converges_on_convex_quadratic_and_near_rosenbrock_minimum():
    w = minimize(co.Lion(learning_rate=1e-3), quadratic, [4.0, 3.0], 6000)
    np.testing.assert_allclose(w, QUADRATIC_MIN, atol=1e-3, rtol=0)
    w = minimize(co.Lion(learning_rate=1e-3), rosenbrock, [-1.2, 1.0], 5000)
    np.testing.assert_allclose(w, [1.0, 1.0], atol=2e-2, rtol=0)
