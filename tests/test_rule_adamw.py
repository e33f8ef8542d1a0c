"""AdamW beyond the registry's shared tests: one step by hand, the decay decoupled from
Adam's scaling, 120 float32 steps against the reference, the Keras twin's refusal of a
second weight decay. (Reference, clipping, Keras integration and twin tests run for every
rule from the registry.)"""

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
from helpers import random_problem, run_keras, run_reference

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "graph"])
def test_one_step_by_hand(compiled):
    # W' = W (1 - 0.1*0.5) = [0.95, -1.9]; Adam's first step with δ = 0.5 (test_optimizers_math's
    # hand case): v̂ = g, r̂ = g² -> step 0.1*g/(0.5 + |g|) = [0.05, -0.1/1.5]
    optimizer = co.AdamW(learning_rate=0.1, beta_1=0.5, beta_2=0.75, epsilon=0.5,
                         decoupled_weight_decay=0.5)
    variable = keras.Variable(np.array([1.0, -2.0]), dtype="float64")
    optimizer.build([variable])
    apply = lambda g: optimizer.apply_gradients([(g, variable)])  # noqa: E731
    apply = tf.function(apply) if compiled else apply
    apply(tf.constant([0.5, -1.0], dtype="float64"))
    np.testing.assert_allclose(variable.numpy(), [0.95 - 0.05, -1.9 + 0.1 / 1.5], rtol=1e-8)


def test_decay_is_not_rescaled_by_the_second_moment():
    """AdamW(λ) is the lecture's Adam run on weights shrunk by 1 - ελ before each step;
    the L2 form (λW added to g, which Adam then divides by sqrt(r̂)) is another rule."""
    init, grads = random_problem("float64", steps=6, seed=4, shapes=[(3,)])
    grads = [[g * np.array([100.0, 1e-3, 1.0])] for (g,) in grads]
    kwargs = dict(learning_rate=0.01, beta_1=0.9, beta_2=0.99, epsilon=1e-7)
    ours = run_keras(co.AdamW(**kwargs, decoupled_weight_decay=2.0), init, grads)[0]
    adam, w = co.Adam(**kwargs), keras.Variable(init[0])
    l2_ref, l2 = reference.Adam(**kwargs), [init[0]]
    for (g,) in grads:
        w.assign(w.numpy() * (1 - float(np.float32(0.01)) * 2.0))
        adam.apply_gradients([(tf.constant(g), w)])
        l2 = l2_ref.step(l2, [g + 2.0 * l2[0]])
    np.testing.assert_allclose(ours, w.numpy(), rtol=1e-12)
    assert np.max(np.abs(ours - l2[0])) > 1e-3


def test_float32_120_steps_within_1e_4_of_the_distance_travelled():
    init, grads = random_problem("float32", steps=120, seed=21, shapes=[(8, 6), (6,)])
    args = dict(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                decoupled_weight_decay=0.1)
    actual = run_keras(co.AdamW(**args), init, grads)
    expected = run_reference(reference.AdamW(**args), init, grads)
    travelled = max(np.max(np.abs(e - w)) for e, w in zip(expected, init))
    error = max(np.max(np.abs(a - e)) for a, e in zip(actual, expected))
    assert travelled > 0.1 and error <= 1e-4 * travelled, (error, travelled)


def test_keras_option_refuses_a_second_weight_decay():
    from experiments.train.config import register_schemas as register_train_schemas
    register_train_schemas()

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        validate(compose("train", overrides=["optimizer=adamw", "optimizer.weight_decay=0.1"]))
        cfg = compose("train", overrides=["optimizer=keras_adamw", "optimizer.weight_decay=0.1"])
    with pytest.raises(ConfigError, match=r"^optimizer.weight_decay=0.1 has no Keras counterpart"
                                          r" here: .* carries optimizer.decoupled_weight_decay"):
        validate(cfg)
