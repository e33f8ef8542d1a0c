"""Independent NumPy implementations of the lecture's rules, for tests and teaching.

Nothing here imports TensorFlow or Keras: each rule is written straight from the
lecture's slides (see ``shared/docs/formulas.md``), in float64 by default, so the Keras
optimizers can be checked against it. Usage::

    opt = reference.Adam(learning_rate=0.1)
    params = [np.zeros(3)]
    params = opt.step(params, grads)   # returns new arrays; state kept in ``opt``
"""

from __future__ import annotations

import numpy as np


def clip(g, threshold, mode="norm"):
    """Lecture clipping: if ``||g|| > u``: ``sign(g)*u`` (``"sign"``) or ``g*u/||g||``."""
    if threshold is None:
        return g
    norm = np.sqrt(np.sum(np.square(g)))
    if norm <= threshold:
        return g
    if mode == "sign":
        return np.sign(g) * threshold
    return g * (threshold / norm)


class _Reference:
    state_names: tuple[str, ...] = ()

    def __init__(self, learning_rate, clip_threshold=None, clip_mode="norm"):
        self.lr = learning_rate
        self.clip_threshold = clip_threshold
        self.clip_mode = clip_mode
        self.t = 0
        self.state: dict[str, list[np.ndarray]] | None = None

    def step(self, params, grads):
        """One update of every parameter; returns the new parameters."""
        params = [np.asarray(p) for p in params]
        if self.state is None:
            self.state = {n: [np.zeros_like(p) for p in params] for n in self.state_names}
        self.t += 1
        out = []
        for i, (w, g) in enumerate(zip(params, grads)):
            g = clip(np.asarray(g, dtype=w.dtype), self.clip_threshold, self.clip_mode)
            out.append(self._update(i, w, g))
        return out

    def _update(self, i, w, g):
        raise NotImplementedError


class SGD(_Reference):
    def _update(self, i, w, g):
        return w - self.lr * g


class Momentum(_Reference):
    state_names = ("v",)

    def __init__(self, learning_rate, momentum, **kw):
        super().__init__(learning_rate, **kw)
        self.a = momentum

    def _update(self, i, w, g):
        v = self.state["v"][i] = self.a * self.state["v"][i] + (1 - self.a) * g
        return w - self.lr * v


class Nesterov(Momentum):
    def _update(self, i, w, g):
        v = self.state["v"][i] = self.a * self.state["v"][i] + (1 - self.a) * g
        return w - self.lr * (self.a * v + (1 - self.a) * g)


class AdaGrad(_Reference):
    state_names = ("r",)

    def __init__(self, learning_rate, epsilon, **kw):
        super().__init__(learning_rate, **kw)
        self.delta = epsilon

    def _update(self, i, w, g):
        r = self.state["r"][i] = self.state["r"][i] + g * g
        return w - self.lr / (self.delta + np.sqrt(r)) * g


class RMSProp(_Reference):
    state_names = ("r",)

    def __init__(self, learning_rate, rho, epsilon, **kw):
        super().__init__(learning_rate, **kw)
        self.rho, self.delta = rho, epsilon

    def _update(self, i, w, g):
        r = self.state["r"][i] = self.rho * self.state["r"][i] + (1 - self.rho) * g * g
        return w - self.lr / (self.delta + np.sqrt(r)) * g


class Adam(_Reference):
    state_names = ("v", "r")

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, bias_correction=True, **kw):
        super().__init__(learning_rate, **kw)
        self.b1, self.b2, self.delta = beta_1, beta_2, epsilon
        self.bias_correction = bias_correction

    def _update(self, i, w, g):
        v = self.state["v"][i] = self.b1 * self.state["v"][i] + (1 - self.b1) * g
        r = self.state["r"][i] = self.b2 * self.state["r"][i] + (1 - self.b2) * g * g
        if self.bias_correction:
            v = v / (1 - self.b1 ** self.t)
            r = r / (1 - self.b2 ** self.t)
        return w - self.lr / (self.delta + np.sqrt(r)) * v


BY_NAME = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adam": Adam,
}
