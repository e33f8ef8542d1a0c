"""Curvature of a network's training loss: Hessian-vector products and the Hessian's extremes.

The loss is taken as a function of **one flat weight vector** θ (every trainable variable,
flattened and concatenated in ``model.trainable_variables`` order), evaluated with Keras's
``stateless_call`` so that no variable is touched. On it:

- ``FlatLoss.hvp(θ, v)`` = H(θ) v by double backpropagation (the gradient of ⟨∇L(θ), v⟩),
  about the cost of two or three gradient evaluations; the Hessian is never formed
  (``FlatLoss.hessian`` forms it, for tests on tiny models only);
- ``lanczos(matvec, n, k)``: k steps of Lanczos with full reorthogonalisation; the extreme
  eigenvalues of the k×k tridiagonal matrix (Ritz values) approximate λ_max and λ_min
  of the operator from both ends at once (Ghorbani, Krishnan, Xiao 2019). Power iteration
  on H, and on H − λ_max I for λ_min, needs several times more products for the same digits;
- the preconditioned sharpness of an adaptive optimizer, λ_max of P⁻¹H with P the rule's
  per-weight denominator (Cohen et al. 2022): P⁻¹ = effective learning rate / η, and
  P⁻¹H has the eigenvalues of the symmetric P^-½ H P^-½, on which Lanczos runs.

``TrainingWatch`` is what ``experiments.trainer.fit`` calls between compiled steps when
``trainer.curvature_every_n_steps`` or ``trainer.weights_every_n_steps`` is on: it measures
(``curvature/lambda_max``, ``curvature/lambda_min``, ``curvature/preconditioned_lambda_max``,
``curvature/seconds``) and keeps the flat weights along the way (``weights/trajectory.npz``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from experiments.optim import effective_learning_rates


def per_example_loss(name: str, y, logits):
    """The loss of every example: ``cross_entropy`` (softmax, from logits) or ``mse``
    (½‖logits − one_hot(y)‖², the edge-of-stability papers' squared loss)."""
    logits = tf.cast(logits, tf.float32)
    if name == "mse":
        target = tf.one_hot(y, tf.shape(logits)[-1], dtype=logits.dtype)
        return 0.5 * tf.reduce_sum(tf.square(logits - target), axis=-1)
    if name == "cross_entropy":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(y, tf.int32), logits)
    raise ValueError(f"loss {name!r} is not valid: choose cross_entropy or mse")


def flat_weights(model) -> np.ndarray:
    """The model's trainable weights as one float64 vector (θ)."""
    return np.concatenate([np.ravel(v.numpy()) for v in model.trainable_variables]
                          ).astype(np.float64)


class FlatLoss:
    """Mean ``loss`` of ``model`` over ``(x, y)`` as a function of one flat vector θ.

    The model runs in inference mode (no dropout noise in a Hessian-vector product) and
    without ``model.losses`` (none of the lab's models has a regulariser)."""

    def __init__(self, model, x, y, loss: str = "cross_entropy"):
        self.model, self.loss = model, loss
        self.x, self.y = tf.constant(x), tf.constant(y)
        variables = model.trainable_variables
        self.shapes = [tuple(v.shape) for v in variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.dtypes = [v.dtype for v in variables]
        self.size = sum(self.sizes)
        self._nontrainable = [v.value for v in model.non_trainable_variables]
        spec = tf.TensorSpec([self.size], tf.float32)
        self._value = tf.function(self._loss, input_signature=[spec])
        self._hvp = tf.function(self._hessian_vector, input_signature=[spec, spec])
        self._gradient = tf.function(self._grad, input_signature=[spec])

    def unflatten(self, theta):
        parts = tf.split(theta, self.sizes)
        return [tf.cast(tf.reshape(p, s), d) for p, s, d in zip(parts, self.shapes, self.dtypes)]

    def _loss(self, theta):
        logits, _ = self.model.stateless_call(self.unflatten(theta), self._nontrainable,
                                              self.x, training=False)
        return tf.reduce_mean(per_example_loss(self.loss, self.y, logits))

    def _grad(self, theta):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            value = self._loss(theta)
        return tape.gradient(value, theta)

    def _hessian_vector(self, theta, v):
        with tf.GradientTape() as outer:
            outer.watch(theta)
            gv = tf.reduce_sum(self._grad(theta) * v)
        return outer.gradient(gv, theta)

    # -- NumPy in, NumPy out ------------------------------------------------------------
    def value(self, theta) -> float:
        return float(self._value(tf.constant(theta, tf.float32)))

    def gradient(self, theta) -> np.ndarray:
        return self._gradient(tf.constant(theta, tf.float32)).numpy().astype(np.float64)

    def hvp(self, theta, v) -> np.ndarray:
        return self._hvp(tf.constant(theta, tf.float32),
                         tf.constant(v, tf.float32)).numpy().astype(np.float64)

    def hessian(self, theta) -> np.ndarray:
        """The full Hessian (n×n, TensorFlow's Jacobian of the gradient): tiny models only."""
        t = tf.constant(theta, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(t)
            g = self._grad(t)
        return tape.jacobian(g, t).numpy().astype(np.float64)


def lanczos(matvec, n: int, iterations: int, seed: int = 0) -> np.ndarray:
    """Ritz values (ascending) of the symmetric operator ``matvec`` on R^n after
    ``min(iterations, n)`` Lanczos steps from a seeded random start, with full
    reorthogonalisation (so no spurious copies of converged eigenvalues appear)."""
    k = min(int(iterations), n)
    q = np.random.default_rng(seed).standard_normal(n)
    q /= np.linalg.norm(q)
    basis = np.zeros((k, n))
    alphas, betas = [], []
    for j in range(k):
        basis[j] = q
        w = matvec(q)
        alpha = float(w @ q)
        alphas.append(alpha)
        for _ in range(2):  # twice is enough (Kahan's "twice is enough")
            w -= basis[:j + 1].T @ (basis[:j + 1] @ w)
        beta = float(np.linalg.norm(w))
        scale = max(abs(a) for a in alphas) or 1.0
        if j == k - 1 or beta <= 1e-10 * scale:  # an invariant subspace: exact from here
            break
        betas.append(beta)
        q = w / beta
    t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    return np.linalg.eigvalsh(t)


def extreme_eigenvalues(loss: FlatLoss, theta, iterations: int = 20, seed: int = 0,
                        scale: np.ndarray | None = None) -> tuple[float, float]:
    """(λ_min, λ_max) of H(θ), or of S H S for a positive diagonal ``scale`` S (whose
    eigenvalues are those of S²H: S² = P⁻¹ gives the preconditioned Hessian's)."""
    if scale is None:
        ritz = lanczos(lambda v: loss.hvp(theta, v), loss.size, iterations, seed)
    else:
        ritz = lanczos(lambda v: scale * loss.hvp(theta, scale * v), loss.size,
                       iterations, seed)
    return float(ritz[0]), float(ritz[-1])


def inverse_preconditioner(optimizer) -> np.ndarray | None:
    """P⁻¹ as one flat vector: the optimizer's effective learning rate over η, i.e.
    1/(δ + sqrt(r)) per weight; None for the rules without one (SGD, momentum) or
    before their first step (no second-moment estimate yet)."""
    if int(optimizer.iterations.numpy()) == 0:
        return None
    rates = effective_learning_rates(optimizer)
    if rates is None:
        return None
    lr = float(np.asarray(optimizer._get_current_learning_rate()))
    return np.concatenate([np.ravel(np.asarray(r)) for r in rates]).astype(np.float64) / lr


def subset(n: int, samples: int, seed: int) -> np.ndarray:
    """Indices of the curvature subset: all ``n`` when ``samples`` is 0, otherwise a
    seeded sample without replacement (sorted, the same every time)."""
    if not samples or samples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 1729]).choice(n, samples, replace=False))


@dataclass
class TrainingWatch:
    """Measurements and weight snapshots taken between training steps.

    ``curvature_every``/``weights_every`` = 0 switch either off; ``every`` is the step
    grid ``fit`` must stop on (their gcd). Calling it at ``step`` returns the metrics to
    log there (empty when nothing was measured).
    """

    model: object
    optimizer: object
    loss: FlatLoss
    curvature_every: int = 0
    weights_every: int = 0
    iterations: int = 20
    seed: int = 0
    steps: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    measurements: list = field(default_factory=list)  # (step, metrics)

    @property
    def every(self) -> int:
        return int(np.gcd(self.curvature_every, self.weights_every))

    def __call__(self, step: int, final: bool = False) -> dict:
        metrics: dict = {}
        if self._due(self.weights_every, step, final, self.steps):
            self.steps.append(step)
            self.weights.append(flat_weights(self.model).astype(np.float32))
        if self._due(self.curvature_every, step, final, [s for s, _ in self.measurements]):
            metrics = self.measure()
            self.measurements.append((step, metrics))
        return metrics

    @staticmethod
    def _due(every: int, step: int, final: bool, done: list) -> bool:
        return bool(every) and (step % every == 0 or final) and step not in done[-1:]

    def measure(self) -> dict:
        start = time.perf_counter()
        theta = flat_weights(self.model)
        low, high = extreme_eigenvalues(self.loss, theta, self.iterations, self.seed)
        metrics = {"curvature/lambda_max": high, "curvature/lambda_min": low}
        inverse = inverse_preconditioner(self.optimizer)
        if inverse is not None:
            metrics["curvature/preconditioned_lambda_max"] = extreme_eigenvalues(
                self.loss, theta, self.iterations, self.seed, scale=np.sqrt(inverse))[1]
        metrics["curvature/seconds"] = time.perf_counter() - start
        return metrics

    def save_trajectory(self, path) -> None:
        """The kept weights: ``steps`` (k,), ``theta`` (k, n) and the variables' shapes."""
        np.savez_compressed(path, steps=np.asarray(self.steps, np.int64),
                            theta=np.stack(self.weights),
                            sizes=np.asarray(self.loss.sizes, np.int64))
