"""Muon beyond the registry's shared tests: 120 float32 steps against the reference (torch's
algorithm), Newton–Schulz against the SVD, the two update scales, which variable takes
which path, and why torch.optim.Muon departs from keras.optimizers.Muon. (Reference,
clipping, Keras integration and twin tests run for every rule from the registry.)"""

from __future__ import annotations

from pathlib import Path

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir

import custom_optimizers as co
from custom_optimizers import reference
from custom_optimizers.rules import muon as muon_rule
from experiments.core.checks import ConfigError
from experiments.train.config import validate
from helpers import random_problem, run_keras, run_reference

CONF = Path(__file__).resolve().parents[1] / "conf"
ARGS = dict(learning_rate=0.01, momentum=0.95, nesterov=True, match_rms_adamw=True,
            beta_1=0.9, beta_2=0.999, epsilon=1e-7, decoupled_weight_decay=0.1)


def _relative(actual, expected, init):
    travelled = max(np.max(np.abs(e - w)) for e, w in zip(expected, init))
    return max(np.max(np.abs(np.float64(a) - e)) for a, e in zip(actual, expected)) / travelled


@pytest.mark.parametrize("nesterov,match", [(True, True), (False, False)])
def test_float32_120_steps_within_1e_4_of_the_distance_travelled(nesterov, match):
    init, grads = random_problem("float32", steps=120, seed=21, shapes=[(12, 7), (7,)])
    args = {**ARGS, "nesterov": nesterov, "match_rms_adamw": match}
    actual = run_keras(co.Muon(**args), init, grads)
    expected = run_reference(reference.Muon(**args), init, grads)
    assert np.max(np.abs(expected[0] - init[0])) > 0.1
    assert _relative(actual, expected, init) <= 1e-4


def test_newton_schulz_flattens_the_singular_values():
    u = np.random.default_rng(0).normal(size=(12, 7)) * np.geomspace(0.5, 10, 7)
    o = co.muon.newton_schulz(tf.constant(u)).numpy()
    np.testing.assert_allclose(o, muon_rule.newton_schulz(u), rtol=1e-10, atol=1e-12)
    left, s, right = np.linalg.svd(u, full_matrices=False)
    s_o = np.linalg.svd(o, compute_uv=False)
    # Singular values spread over a decade and more come out within [0.6, 1.25] (Jordan's
    # quintic does not converge to 1, on purpose; values far below the largest stay small
    # after 5 steps), with u's singular vectors kept.
    assert s.max() / s.min() > 10 and 0.6 < s_o.min() and s_o.max() < 1.25
    in_u_basis = left.T @ o @ right.T  # diagonal: a polynomial in u's singular values
    np.testing.assert_allclose(in_u_basis - np.diag(np.diag(in_u_basis)), 0, atol=1e-10)
    np.testing.assert_allclose(np.sort(np.diag(in_u_basis)), np.sort(s_o), rtol=1e-10)


def test_update_scales_by_hand():
    # (12, 7): Moonlight 0.2 sqrt(12); Jordan's original sqrt(max(1, 12/7)); (7, 12): sqrt(1)
    assert muon_rule.update_scale((12, 7), True) == pytest.approx(0.2 * np.sqrt(12))
    assert muon_rule.update_scale((12, 7), False) == pytest.approx(np.sqrt(12 / 7))
    assert muon_rule.update_scale((7, 12), False) == 1.0
    init, grads = random_problem("float64", steps=1, seed=2, shapes=[(12, 7)])
    # Step 1, no decay: m = (1-μ) g, u = (1-μ) g + μ m = (1-μ²) g; NS removes the factor.
    args = {**ARGS, "decoupled_weight_decay": 0.0, "match_rms_adamw": False}
    end = run_keras(co.Muon(**args), init, grads)[0]
    lr = float(np.float32(0.01))
    np.testing.assert_allclose(
        end, init[0] - lr * np.sqrt(12 / 7) * muon_rule.newton_schulz(grads[0][0]), rtol=1e-12)


def test_update_paths_biases_embeddings_and_logits_take_adamw():
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), dtype="int32")
    h = keras.layers.Embedding(10, 6, name="embedding")(x)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(5, name="hidden")(h)
    out = keras.layers.Dense(3, name="logits")(h)
    model = keras.Model(x, out)
    optimizer = co.Muon()
    optimizer.build(model.trainable_variables)
    paths = optimizer.update_paths()
    assert paths["muon"] == ["hidden/kernel"]
    assert sorted(paths["adamw"]) == ["embedding/embeddings", "hidden/bias", "logits/bias",
                                      "logits/kernel"]
    # One slot on the Muon path (the momentum), two on the AdamW path.
    assert sum(v is not None for v in optimizer.velocities) == 4
    # Keras's twin (as keras_muon.yaml builds it) splits them the same way.
    twin = keras.optimizers.Muon(exclude_layers=["logits"])
    assert [v.path for v in model.trainable_variables if not twin._should_use_adamw(v)] == [
        "hidden/kernel"]


def _bfloat16(v):
    return np.asarray(v, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


class _TorchMuon(reference.Muon):
    """torch.optim.Muon's rounding: its Newton–Schulz runs in bfloat16."""
    rounding = staticmethod(_bfloat16)


def test_why_torch_departs_from_keras():
    """After 60 float32 steps: this rule and keras.optimizers.Muon agree to ~1e-5 of the
    distance travelled (Keras's momentum is the EMA's 1/(1-μ) multiple: Newton–Schulz
    normalises it away), while Newton–Schulz in bfloat16, as torch computes it, alone moves
    the weights ~0.3-0.5% of the distance away from both."""
    init, grads = random_problem("float32", steps=60, seed=0, shapes=[(32, 16)])
    args = {**ARGS, "decoupled_weight_decay": 0.0}
    float32_rule = run_reference(reference.Muon(**args), init, grads)
    torch_rounding = run_reference(_TorchMuon(**args), init, grads)
    ours = run_keras(co.Muon(**args), init, grads)
    theirs = run_keras(keras.optimizers.Muon(learning_rate=0.01, momentum=0.95, rms_rate=0.2,
                                             weight_decay=0.0), init, grads)
    assert _relative(ours, float32_rule, init) < 3e-5
    assert _relative(theirs, float32_rule, init) < 3e-5
    assert 1e-3 < _relative(torch_rounding, float32_rule, init) < 1e-2
    assert 1e-3 < _relative(theirs, torch_rounding, init) < 1e-2


def test_keras_option_refuses_the_original_scale():
    from experiments.train.config import register_schemas as register_train_schemas
    register_train_schemas()

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        validate(compose("train", overrides=["optimizer=muon", "optimizer.match_rms_adamw=false"]))
        cfg = compose("train", overrides=["optimizer=keras_muon",
                                          "optimizer.match_rms_adamw=false"])
    with pytest.raises(ConfigError, match=r"^optimizer.match_rms_adamw=false has no Keras "):
        validate(cfg)
