"""One spectrum measurement, as stored in a run: ``curvature/spectrum/step_<N>.npz``.

Keys: ``nodes`` and ``weights`` (stochastic Lanczos quadrature over all probes, the
weights summing to 1), ``probe`` (which probe each node came from), ``step``,
``operator`` (hessian or ggn), ``size`` (n, the number of weights), ``trace`` (Hutch++),
``layer_names`` and ``layer_lambda_max`` (λ_max of each layer's diagonal block), and
``lambda_max`` (Lanczos on the whole operator). ``density`` is the smoothed spectral
density Σ w_j N(λ; θ_j, σ²) that the pictures draw (Ghorbani et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Spectrum:
    step: int
    nodes: np.ndarray
    weights: np.ndarray
    probe: np.ndarray
    trace: float
    size: int
    operator: str = "hessian"
    lambda_max: float = float("nan")
    layers: dict = field(default_factory=dict)  # layer name -> λ_max of its block

    @property
    def filename(self) -> str:
        return f"step_{self.step}"

    def save(self, path) -> None:
        np.savez_compressed(path, nodes=self.nodes, weights=self.weights, probe=self.probe,
                            step=self.step, trace=self.trace, size=self.size,
                            operator=self.operator, lambda_max=self.lambda_max,
                            layer_names=np.asarray(list(self.layers), dtype=str),
                            layer_lambda_max=np.asarray(list(self.layers.values()), float))

    @classmethod
    def load(cls, path) -> "Spectrum":
        with np.load(Path(path)) as z:
            return cls(step=int(z["step"]), nodes=z["nodes"], weights=z["weights"],
                       probe=z["probe"], trace=float(z["trace"]), size=int(z["size"]),
                       operator=str(z["operator"]), lambda_max=float(z["lambda_max"]),
                       layers=dict(zip(z["layer_names"].tolist(),
                                       z["layer_lambda_max"].tolist())))

    def outliers(self, gap: float = 0.1) -> np.ndarray:
        """How many eigenvalues each probe's Lanczos run puts above the bulk: nodes above
        ``gap`` × the top node (the bulk is the mass near 0). One count per probe."""
        count = int(self.probe.max()) + 1
        top = np.array([self.nodes[self.probe == p].max() for p in range(count)])
        return np.bincount(self.probe[self.nodes > gap * top[self.probe]], minlength=count)

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Σ w_j N(λ; θ_j, σ²) on ``grid``; σ defaults to 1/200 of the nodes' range.
        Integrates to 1 (over a grid wide enough)."""
        if sigma is None:
            sigma = max(np.ptp(self.nodes), 1e-12) / 200
        z = (grid[:, None] - self.nodes[None, :]) / sigma
        return np.exp(-0.5 * z ** 2) @ self.weights / (sigma * np.sqrt(2 * np.pi))
