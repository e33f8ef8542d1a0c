"""The training loss as a function of one flat weight vector, and its curvature operators.

The loss is taken as a function of **one flat weight vector** θ (every trainable variable,
flattened and concatenated in ``model.trainable_variables`` order), evaluated with Keras's
``stateless_call`` so that no variable is touched. On it:

- ``FlatLoss.hvp(θ, v)`` = H(θ) v by double backpropagation (the gradient of ⟨∇L(θ), v⟩),
  about the cost of two or three gradient evaluations; the Hessian is never formed
  (``FlatLoss.hessian`` forms it, for tests on tiny models only);
- ``FlatLoss.ggnvp(θ, v)`` = G(θ) v for the generalized Gauss–Newton matrix
  G = (1/N) Σ_i J_iᵀ H_ℓ,i J_i (J_i the Jacobian of example i's logits in θ, H_ℓ,i the
  Hessian of its loss in the logits): a Jacobian-vector product (forward mode), H_ℓ on the
  logits, and a vector-Jacobian product (reverse mode). G is positive semi-definite
  whenever the loss is convex in the logits (cross-entropy, squared loss); under softmax
  cross-entropy it is the Fisher information of the model's own predictive distribution.
- ``FlatLoss.operator(name)``: the product of ``hessian`` or ``ggn``
  (``trainer.curvature_operator``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from experiments.core.config import CURVATURE_OPERATORS as OPERATORS


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
        self._ggnvp = tf.function(self._ggn_vector, input_signature=[spec, spec])
        self._gradient = tf.function(self._grad, input_signature=[spec])

    def unflatten(self, theta):
        parts = tf.split(theta, self.sizes)
        return [tf.cast(tf.reshape(p, s), d) for p, s, d in zip(parts, self.shapes, self.dtypes)]

    def _logits(self, theta):
        logits, _ = self.model.stateless_call(self.unflatten(theta), self._nontrainable,
                                              self.x, training=False)
        return tf.cast(logits, tf.float32)

    def _loss(self, theta):
        return tf.reduce_mean(per_example_loss(self.loss, self.y, self._logits(theta)))

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

    def _ggn_vector(self, theta, v):
        with tf.GradientTape() as vjp:
            vjp.watch(theta)
            with tf.autodiff.ForwardAccumulator(theta, v) as jvp:
                logits = self._logits(theta)
        jv = jvp.jvp(logits)  # J v: (N, C)
        z = tf.stop_gradient(logits)
        with tf.GradientTape() as outer:  # H_ℓ (J v), the loss's Hessian in the logits
            outer.watch(z)
            with tf.GradientTape() as inner:
                inner.watch(z)
                total = tf.reduce_sum(per_example_loss(self.loss, self.y, z))
            directional = tf.reduce_sum(inner.gradient(total, z) * jv)
        h_jv = outer.gradient(directional, z) / tf.cast(tf.shape(z)[0], tf.float32)
        return vjp.gradient(logits, theta, output_gradients=h_jv)  # Jᵀ H_ℓ J v

    # -- NumPy in, NumPy out ------------------------------------------------------------
    def value(self, theta) -> float:
        return float(self._value(tf.constant(theta, tf.float32)))

    def gradient(self, theta) -> np.ndarray:
        return self._gradient(tf.constant(theta, tf.float32)).numpy().astype(np.float64)

    def hvp(self, theta, v) -> np.ndarray:
        return self._hvp(tf.constant(theta, tf.float32),
                         tf.constant(v, tf.float32)).numpy().astype(np.float64)

    def ggnvp(self, theta, v) -> np.ndarray:
        return self._ggnvp(tf.constant(theta, tf.float32),
                           tf.constant(v, tf.float32)).numpy().astype(np.float64)

    def operator(self, name: str, theta):
        """v ↦ H(θ) v (``hessian``) or G(θ) v (``ggn``), NumPy in and out."""
        if name not in OPERATORS:
            raise ValueError(f"operator {name!r} is not valid: choose one of "
                             f"{', '.join(OPERATORS)}")
        product = self.hvp if name == "hessian" else self.ggnvp
        return lambda v: product(theta, v)

    def logits(self, theta) -> np.ndarray:
        return self._logits(tf.constant(theta, tf.float32)).numpy().astype(np.float64)

    @staticmethod
    def jacobian(function, theta) -> np.ndarray:
        """The full Jacobian of ``function`` (θ ↦ tensor) at θ, by reverse mode: tiny
        models only (tests)."""
        t = tf.constant(theta, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(t)
            out = function(t)
        return tape.jacobian(out, t).numpy().astype(np.float64)

    def hessian(self, theta) -> np.ndarray:
        """The full Hessian (n×n, the Jacobian of the gradient): tiny models only."""
        return self.jacobian(self._grad, theta)

    def logits_jacobian(self, theta) -> np.ndarray:
        """∂logits/∂θ, (N, C, n): tiny models only."""
        return self.jacobian(self._logits, theta)

    def blocks(self, groups: dict[str, list[int]]) -> dict[str, np.ndarray]:
        """Flat indices of each group of variables (``experiments.train.trainer.layer_groups``:
        one Keras layer's kernel and bias together)."""
        starts = np.cumsum([0] + self.sizes)
        return {name: np.concatenate([np.arange(starts[i], starts[i + 1]) for i in ix])
                for name, ix in groups.items()}
