"""The Hessian's spectrum (experiments.curvature): Hutch++ trace, stochastic Lanczos
quadrature, layer blocks and the Gauss–Newton operator against the exact matrices of tiny
networks (TensorFlow's full Jacobian, ``numpy.linalg.eigvalsh``), and the trainer's
spectrum options end to end.

Tolerances: the Lanczos parts (one probe's quadrature moments, the top node, every layer
block's λ_max, GGN products and extremes) are deterministic and checked to float32
accuracy. The probe averages are random: they are checked against the estimator's own
standard deviation computed from the exact Hessian (3 sd), with the number of probes
stated in each test (see docs/curvature.md for the error measured over 20 seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments.train.config import register_schemas as register_train_schemas
from experiments.core.checks import ConfigError
from experiments.train.config import validate

register_train_schemas()

CONF = Path(__file__).resolve().parents[1] / "conf"


def _data(features=12, classes=4, n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = rng.integers(0, classes, n).astype(np.int32)
    return x, y


def _loss(name="mlp", loss="cross_entropy", features=12, **params):
    """A tiny model's FlatLoss at weights moved off the initialisation, and those weights."""
    import keras

    from experiments.curvature import FlatLoss, flat_weights
    from experiments.models import build_model

    keras.utils.set_random_seed(0)
    params = params or ({"depth": 2, "width": 8, "activation": "tanh"} if name == "mlp" else {})
    x, y = _data(features)
    model = build_model(name, (features,), 4, **params)
    f = FlatLoss(model, x, y, loss)
    theta = flat_weights(model) + 0.3 * np.random.default_rng(1).standard_normal(f.size)
    return f, theta


@pytest.fixture(scope="module")
def mlp():
    """The tanh MLP 12-8-8-4 (212 weights), cross-entropy: (FlatLoss, θ, exact Hessian)."""
    f, theta = _loss()
    h = f.hessian(theta)
    return f, theta, (h + h.T) / 2


def _hutchinson_sd(a: np.ndarray, probes: int) -> float:
    """Standard deviation of the mean of ``probes`` values zᵀAz, z Rademacher."""
    off = a - np.diag(np.diag(a))
    return float(np.sqrt(2 * np.sum(off ** 2) / probes))


# ------------------------------------------------------------------------------ trace
def test_hutchpp_is_exact_with_a_full_sketch_and_within_its_spread_otherwise(mlp):
    from experiments.curvature import hutchpp

    f, theta, h = mlp
    matvec = f.operator("hessian", theta)
    exact = np.trace(h)
    # 3n products: the sketch spans R^n, tr(QᵀHQ) is the whole trace
    assert hutchpp(matvec, f.size, 3 * f.size) == pytest.approx(exact, rel=1e-5)
    # 20 probes (60 products): within 3 sd of Hutchinson on the rest (an upper bound)
    estimate = hutchpp(matvec, f.size, 60, seed=0)
    assert abs(estimate - exact) <= 3 * _hutchinson_sd(h, 20)
    assert estimate != pytest.approx(exact, rel=1e-6)  # it is an estimate, not the trace


def test_hutchpp_beats_hutchinson_on_a_spectrum_with_outliers():
    """A PSD matrix with 5 outliers over a bulk (the shape of a network's Hessian): at the
    same 30 products, Hutch++'s error is far below Hutchinson's (20 seeds)."""
    from experiments.curvature import hutchpp
    from experiments.curvature.lanczos import rademacher

    n = 300
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigen = np.concatenate([[100, 80, 60, 40, 20], rng.uniform(0, 0.1, n - 5)])
    a = (basis * eigen) @ basis.T
    exact = eigen.sum()
    plus = [hutchpp(lambda v: a @ v, n, 30, s) - exact for s in range(20)]
    plain = [np.mean([z @ a @ z for z in rademacher(np.random.default_rng(s), n, 30)]) - exact
             for s in range(20)]
    assert np.sqrt(np.mean(np.square(plus))) < 0.1 * np.sqrt(np.mean(np.square(plain)))


# ------------------------------------------------------------------------ quadrature
def test_one_probe_quadrature_has_the_exact_moments(mlp):
    from experiments.curvature.lanczos import quadrature

    f, theta, h = mlp
    v = np.random.default_rng(3).standard_normal(f.size)
    u = v / np.linalg.norm(v)
    nodes, weights = quadrature(f.operator("hessian", theta), v, 10)  # 10 steps of 212
    assert weights.sum() == pytest.approx(1, abs=1e-12)
    assert weights @ nodes == pytest.approx(u @ h @ u, rel=1e-4)
    assert weights @ nodes ** 2 == pytest.approx(u @ h @ h @ u, rel=1e-4)


def test_slq_density_moments_and_top_node_match_the_exact_hessian(mlp):
    from experiments.curvature import slq

    f, theta, h = mlp
    n, probes = f.size, 10
    q = slq(f.operator("hessian", theta), n, probes, 30)
    exact = np.linalg.eigvalsh(h)
    assert q.nodes.shape == q.weights.shape == q.probe.shape == (probes * 30,)
    assert q.weights.sum() == pytest.approx(1, abs=1e-12)
    assert np.all(q.weights >= 0)
    # first two moments: tr H/n and tr H²/n, within 3 sd of the 10-probe average
    assert abs(q.moment(1) - np.trace(h) / n) <= 3 * _hutchinson_sd(h, probes) / n
    assert abs(q.moment(2) - np.trace(h @ h) / n) <= 3 * _hutchinson_sd(h @ h, probes) / n
    assert q.probe_moments(1).mean() == pytest.approx(q.moment(1), rel=1e-12)
    # the top node (and the bottom one) converge to the extreme eigenvalues
    assert q.nodes.max() == pytest.approx(exact[-1], rel=1e-5)
    assert q.nodes.min() == pytest.approx(exact[0], rel=1e-4)


def test_the_density_counts_the_outliers_that_stand_out_of_the_bulk():
    """A known spectrum (a bulk in [0, 0.1] and 9 outliers in [1, 5]): every probe's
    quadrature puts exactly 9 nodes right of the bulk; the density integrates to 1."""
    from experiments.curvature import Spectrum, slq

    n = 400
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigen = np.concatenate([np.linspace(1, 5, 9), rng.uniform(0, 0.1, n - 9)])
    a = (basis * eigen) @ basis.T
    q = slq(lambda v: a @ v, n, 10, 40)
    spectrum = Spectrum(step=0, nodes=q.nodes, weights=q.weights, probe=q.probe, trace=0.0,
                        size=n)
    assert 0.1 <= spectrum.bulk_edge() < 1
    assert list(spectrum.outliers()) == [9] * 10
    assert np.allclose(spectrum.top(9).mean(0), eigen[8::-1], rtol=1e-6)
    grid = np.linspace(-1, 6, 20001)
    assert np.trapezoid(spectrum.density(grid), grid) == pytest.approx(1, abs=1e-6)


def test_every_layer_block_lambda_max_matches_eigvalsh(mlp):
    from experiments.curvature import block_lambda_max
    from experiments.train.trainer import layer_groups

    f, theta, h = mlp
    blocks = f.blocks(layer_groups(f.model))
    assert len(blocks) == 3 and list(blocks)[-1] == "logits"
    assert sorted(np.concatenate(list(blocks.values()))) == list(range(f.size))
    assert [b.size for b in blocks.values()] == [12 * 8 + 8, 8 * 8 + 8, 8 * 4 + 4]
    for name, idx in blocks.items():
        exact = np.linalg.eigvalsh(h[np.ix_(idx, idx)])[-1]
        measured = block_lambda_max(f.operator("hessian", theta), f.size, idx, 40)
        assert measured == pytest.approx(exact, rel=1e-4), name


# ------------------------------------------------------------------------ Gauss–Newton
def _softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def _exact_ggn(f, theta) -> np.ndarray:
    """(1/N) Σ_i J_iᵀ H_ℓ,i J_i with the loss's Hessian in the logits in closed form."""
    jac = f.logits_jacobian(theta)  # (N, C, n)
    z = f.logits(theta)
    if f.loss == "mse":
        h_loss = np.broadcast_to(np.eye(z.shape[1]), (len(z), z.shape[1], z.shape[1]))
    else:
        h_loss = np.stack([np.diag(row) - np.outer(row, row) for row in _softmax(z)])
    return np.einsum("icn,icd,idm->nm", jac, h_loss, jac) / len(z)


def _fisher(f, theta) -> np.ndarray:
    """E_x E_{c ~ p(·|x)} ∇log p_c ∇log p_cᵀ from per-class gradients of log-softmax."""
    import tensorflow as tf

    grads = f.jacobian(lambda t: tf.nn.log_softmax(f._logits(t)), theta)  # (N, C, n)
    p = _softmax(f.logits(theta))
    return np.einsum("ic,icn,icm->nm", p, grads, grads) / len(p)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_ggn_products_are_the_exact_gauss_newton_matrix_which_is_psd(name, loss):
    from experiments.curvature import extreme_eigenvalues

    f, theta = _loss(name, loss, features=20 if name == "logreg" else 12)
    g = _exact_ggn(f, theta)
    v = np.random.default_rng(2).standard_normal(f.size)
    assert np.allclose(f.ggnvp(theta, v), g @ v, rtol=1e-4, atol=1e-5 * np.abs(g @ v).max())
    exact = np.linalg.eigvalsh(g)
    assert exact[0] >= -1e-6 * exact[-1]  # positive semi-definite
    low, high = extreme_eigenvalues(f, theta, 40, operator="ggn")
    assert high == pytest.approx(exact[-1], rel=1e-4)
    assert low >= -1e-4 * high
    if loss == "cross_entropy":  # the Fisher of the model's own predictions
        assert np.allclose(g, _fisher(f, theta), atol=1e-5 * np.abs(g).max())
    hessian = f.hessian(theta)
    if name == "logreg":  # linear logits: no second-derivative term, G = H
        assert np.allclose(g, hessian, atol=1e-4 * np.abs(g).max())
    else:  # the MLP's Hessian has negative curvature the GGN drops
        assert np.linalg.eigvalsh((hessian + hessian.T) / 2)[0] < -1e-3 * exact[-1]


# ------------------------------------------------------------------ trainer options
def make_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("overrides,message", [
    (["trainer.curvature_operator=fisher"],
     "trainer.curvature_operator='fisher' is not valid: choose one of hessian, ggn"),
    (["trainer.curvature_probes=0"], "trainer.curvature_probes=0 is out of range"),
    (["trainer.curvature_spectrum=true"],
     "trainer.curvature_spectrum=true needs trainer.curvature_every_n_steps > 0"),
])
def test_bad_spectrum_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(*overrides))


TINY = ["dataset=breast_cancer", "model=mlp", "model.depth=1", "model.width=4",
        "optimizer=adam", "optimizer.learning_rate=0.01", "trainer.epochs=2",
        "trainer.batch_size=64", "trainer.max_steps=10", "trainer.steps_per_execution=3",
        "tracking.log_model=false", "tracking.log_plots=false",
        "trainer.curvature_every_n_steps=5", "trainer.curvature_samples=40",
        "trainer.curvature_iterations=8", "trainer.curvature_spectrum=true",
        "trainer.curvature_probes=3"]


@pytest.mark.parametrize("operator", ["hessian", "ggn"])
def test_spectrum_metrics_and_artifacts_are_logged_and_read_back(tmp_path, shared_store,
                                                                   operator):
    from mlflow.tracking import MlflowClient

    from experiments.curvature.figures import find_runs, load_run, spectrum_figure
    from experiments.train.pipeline import run

    uri = shared_store
    result = run(make_cfg(*TINY, f"tracking.uri={uri}", f"trainer.curvature_operator={operator}",
                          "tracking.experiment_name=spectra", "+tracking.tags.challenge=tiny"))
    client = MlflowClient(tracking_uri=uri)
    rid = result["run_id"]

    def history(name):
        return [(m.step, m.value) for m in sorted(client.get_metric_history(rid, name),
                                                  key=lambda m: m.step)]

    assert [s for s, _ in history("curvature/trace")] == [0, 5, 10]
    metrics = client.get_run(rid).data.metrics
    layers = {k.split("/")[-1] for k in metrics if k.startswith("curvature/lambda_max/")}
    assert layers == {k.split("/")[-1] for k in metrics if k.startswith("grad_norm/")}
    assert len(layers) == 2 and "logits" in layers  # the hidden layer and the output
    assert all(v > 0 for _, v in history("curvature/seconds"))
    files = sorted(a.path for a in client.list_artifacts(rid, "curvature/spectrum"))
    assert files == [f"curvature/spectrum/step_{s}.{e}" for s in (0, 10, 5)
                     for e in ("npz", "png")]
    spectra = load_run(rid, uri)
    assert [s.step for s in spectra] == [0, 5, 10]
    for spectrum, (step, trace) in zip(spectra, history("curvature/trace")):
        assert spectrum.operator == operator and spectrum.probe.max() == 2
        assert spectrum.weights.sum() == pytest.approx(1, abs=1e-9)
        assert spectrum.trace == pytest.approx(trace, rel=1e-6)
        assert spectrum.layers["logits"] == pytest.approx(
            dict(history("curvature/lambda_max/logits"))[step], rel=1e-6)
        if operator == "ggn":
            assert spectrum.nodes.min() >= -1e-4 * spectrum.nodes.max()
    assert find_runs(uri, "tiny", "spectra", operator)["adam"][-1] == rid  # the gallery's way
    picture = spectrum_figure({"adam": [rid]}, tmp_path / "spectrum.png", uri)
    assert picture.stat().st_size > 10_000
