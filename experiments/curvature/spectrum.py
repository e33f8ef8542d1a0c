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

from experiments.curvature.lanczos import Quadrature


@dataclass
class Spectrum(Quadrature):
    """A ``Quadrature`` (``moment``, ``probe_moments``) and what else was measured."""

    step: int
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

    def top(self, k: int) -> np.ndarray:
        """The ``k`` largest nodes of every probe, (probes, k), largest first: the top
        Ritz values, which converge first (the same in every probe once converged)."""
        count = int(self.probe.max()) + 1
        return np.stack([np.sort(self.nodes[self.probe == p])[::-1][:k] for p in range(count)])

    def bulk_edge(self, floor: float = 1e-6) -> float:
        """The right edge of the bulk: walking right from the density's peak, the first λ
        where the density (default σ) falls under ``floor`` × its peak."""
        grid = np.linspace(self.nodes.min(), self.nodes.max(), 4000)
        density = self.density(grid)
        start = int(np.argmax(density))
        below = np.nonzero(density[start:] < floor * density[start])[0]
        return float(grid[start + below[0]]) if below.size else float(grid[-1])

    def outliers(self, floor: float = 1e-6) -> np.ndarray:
        """How many eigenvalues stand out to the right of the bulk (isolated peaks of the
        density), one count per probe: its Ritz values above ``bulk_edge``."""
        edge = self.bulk_edge(floor)
        return np.bincount(self.probe[self.nodes > edge], minlength=int(self.probe.max()) + 1)

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Σ w_j N(λ; θ_j, σ²) on ``grid``; σ defaults to 1/200 of the nodes' range.
        Integrates to 1 (over a grid wide enough)."""
        if sigma is None:
            sigma = max(np.ptp(self.nodes), 1e-12) / 200
        z = (grid[:, None] - self.nodes[None, :]) / sigma
        return np.exp(-0.5 * z ** 2) @ self.weights / (sigma * np.sqrt(2 * np.pi))
