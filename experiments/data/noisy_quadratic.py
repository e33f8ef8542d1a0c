"""DeepOBS's noisy quadratic (``quadratic_deep``) as a dataset and a model of this lab.

The problem (Schneider, Balles, Hennig 2019, DeepOBS): a 100-dimensional quadratic whose
Hessian ``Q = Rᵀ diag(λ) R`` has 90 % of its eigenvalues drawn uniformly from [0, 1] and
10 % from [30, 60] (the spectrum reported for deep networks, Chaudhari et al. 2016), with
``R`` a random rotation. The loss of one "data point" ``x`` is

    ℓ(θ; x) = ½ (θ − x)ᵀ Q (θ − x),

the data are 1000 draws ``x ~ N(0, 0.6² I)`` (training) and another 1000 (test), so a
mini-batch gradient ``Q(θ − x̄_batch)`` is the true gradient ``Qθ`` plus sampling noise.
θ starts at (1, …, 1). The minimiser of the expected loss is θ = 0, where the loss is the
noise floor ½·0.6²·tr(Q).

As in DeepOBS the eigenvalues, the rotation and the data come from fixed seeds (42 for
the problem and the training data, 43 for the test data); the spectrum and rotation are
drawn with NumPy's ``Generator`` here (DeepOBS uses the legacy ``RandomState`` and its own
rotation sampler), so the numbers are DeepOBS's in distribution, not bit for bit.

In this lab it is the dataset ``noisy_quadratic`` (``x`` of shape (100,); the labels are a
dummy alternating 0/1, because every dataset here is a classification split) and the model
``noisy_quadratic`` (one weight vector θ; it adds ℓ averaged over the batch as the model's
own loss and outputs constant zero logits, so the trainer's cross-entropy is the constant
ln 2 with no gradient and every gradient is the quadratic's). Its validation objective is
:func:`loss` of θ on the validation points (``val_model_loss``); the benchmark scores its
:func:`excess_loss`, the analytic excess population loss (``excess_loss``).
"""

from __future__ import annotations

import numpy as np

DIM = 100
TRAIN_SIZE = 1000
NOISE = 0.6
SEED = 42


def hessian(dim: int = DIM, seed: int = SEED) -> np.ndarray:
    """The fixed Hessian ``Rᵀ diag(λ) R``: 90 % of λ in U[0, 1], 10 % in U[30, 60]."""
    rng = np.random.default_rng(seed)
    n_big = dim // 10
    eigenvalues = np.concatenate([rng.uniform(0.0, 1.0, dim - n_big),
                                  rng.uniform(30.0, 60.0, n_big)])
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    rotation = q * np.sign(np.diag(r))  # Haar-distributed orthogonal matrix
    return (rotation.T * eigenvalues) @ rotation


def loss(theta: np.ndarray, x: np.ndarray, q: np.ndarray | None = None) -> float:
    """Mean over the rows of ``x`` of ½ (θ − x)ᵀ Q (θ − x) (the NumPy reference)."""
    q = hessian(len(theta)) if q is None else q
    d = np.asarray(theta, np.float64)[None, :] - np.asarray(x, np.float64)
    return float(0.5 * np.mean(np.einsum("ij,jk,ik->i", d, q, d)))


def excess_loss(theta: np.ndarray, q: np.ndarray | None = None) -> float:
    """The expected loss over the data distribution minus its minimum (the noise floor
    ½·0.6²·tr(Q)): E_x ½(θ − x)ᵀQ(θ − x) − ½σ²tr(Q) = ½ θᵀQθ, since E x = 0. Analytic, so
    no validation sample adds noise to it (the benchmark's metric ``excess_loss``)."""
    q = hessian(len(theta)) if q is None else q
    theta = np.asarray(theta, np.float64)
    return float(0.5 * theta @ q @ theta)


def build_raw():
    """The dataset: 1000 training and 1000 test points ``x ~ N(0, 0.6² I)``, dummy labels,
    as ``(x_train, y_train, x_test, y_test)`` (the fields of ``experiments.data.RawData``)."""
    x_train = np.random.default_rng(SEED).normal(0.0, NOISE, (TRAIN_SIZE, DIM))
    x_test = np.random.default_rng(SEED + 1).normal(0.0, NOISE, (TRAIN_SIZE, DIM))
    labels = np.arange(TRAIN_SIZE) % 2
    return x_train.astype(np.float32), labels, x_test.astype(np.float32), labels


def build_model(input_shape, num_classes: int, hessian_seed: int = SEED, start: float = 1.0):
    """A Keras model holding θ (initialised to ``start``) whose own loss is the quadratic."""
    import keras
    from keras import ops

    dim = int(np.prod(input_shape))
    q = hessian(dim, hessian_seed).astype(np.float32)

    class Quadratic(keras.layers.Layer):
        def build(self, shape):
            self.theta = self.add_weight(shape=(dim,), name="theta",
                                         initializer=keras.initializers.Constant(start))
            self.q = ops.convert_to_tensor(q)

        def excess_loss(self):
            """½ θᵀQθ (see ``excess_loss``), as a tensor."""
            return 0.5 * ops.sum(self.theta * ops.matmul(self.q, self.theta))

        def call(self, x):
            d = ops.reshape(x, (-1, dim)) - self.theta
            self.add_loss(0.5 * ops.mean(ops.sum(ops.matmul(d, self.q) * d, axis=-1)))
            return ops.zeros((ops.shape(x)[0], num_classes), dtype=x.dtype)

    x = keras.Input(shape=tuple(input_shape), name="input")
    return keras.Model(x, Quadratic(name="quadratic")(x), name="noisy_quadratic")
