"""What the NumPy references share: the lecture's clipping and the step loop.

Each rule's reference is written straight from the lecture's slides (``docs/formulas.md``)
in its own rule module, in float64 by default, so the Keras optimizers can be checked
against it; nothing here imports TensorFlow or Keras.
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


class Reference:
    """One rule in NumPy: ``step(params, grads)`` returns new arrays, state kept in ``self``.

    A subclass names its per-weight state (``state_names``, each starting at zero) and
    writes ``_update(i, w, g)`` for parameter ``i`` at step ``self.t`` (1-based), with
    ``g`` already clipped.
    """

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

    def effective_learning_rates(self):
        """An adaptive rule's per-weight ``lr / (δ + sqrt(r))`` after the last step."""
        raise NotImplementedError(f"{type(self).__name__} has no effective learning rate")
