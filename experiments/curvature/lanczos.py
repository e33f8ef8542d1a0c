"""Lanczos on a symmetric operator given by its products: extreme eigenvalues, the spectral
density by stochastic Lanczos quadrature, and the top eigenvalue of diagonal blocks.

- ``lanczos(matvec, n, k)``: k steps with full reorthogonalisation; the extreme eigenvalues
  of the k×k tridiagonal T (Ritz values) approximate λ_max and λ_min from both ends at once
  (Ghorbani, Krishnan, Xiao 2019). Power iteration on H, and on H − λ_max I for λ_min,
  needs several times more products for the same digits.
- ``slq(matvec, n, probes, k)``: stochastic Lanczos quadrature (Lin, Saad, Yang 2016;
  Ghorbani et al. 2019): from each unit Rademacher probe v, T's eigenvalues θ_j are the
  nodes and the squared first components τ_j² of its eigenvectors the weights of a
  Gauss quadrature for the spectral measure vᵀ δ(λ − H) v, exact for polynomials of degree
  < 2k: so Σ τ_j² θ_j = vᵀHv and Σ τ_j² θ_j² = ‖Hv‖², whose means over probes are tr H/n
  and tr H²/n. Averaged over probes (weights / probes), the weights sum to 1.
- ``block_lambda_max(matvec, n, indices, k)``: λ_max of the diagonal block H[idx, idx]
  (one layer's weights), Lanczos on the block's coordinates.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits


def single_threaded_blas(function):
    """Run ``function`` with NumPy's BLAS on one thread: between TensorFlow's products,
    a multi-threaded BLAS spinning against TensorFlow's own threads for the cores made
    these small vector operations cost 5× the Hessian-vector products' CPU time."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return wrapper


@single_threaded_blas
def tridiagonal(matvec, start: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """(α, β) of ``min(iterations, n)`` Lanczos steps from ``start`` (normalised here), with
    full reorthogonalisation (so no spurious copies of converged eigenvalues appear); it
    stops early on an invariant subspace, where T is exact."""
    n = start.size
    k = min(int(iterations), n)
    q = start / np.linalg.norm(start)
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
    return np.asarray(alphas), np.asarray(betas)


def _matrix(alphas, betas) -> np.ndarray:
    return np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)


def lanczos(matvec, n: int, iterations: int, seed: int = 0) -> np.ndarray:
    """Ritz values (ascending) of the symmetric operator ``matvec`` on R^n after
    ``min(iterations, n)`` Lanczos steps from a seeded Gaussian start."""
    start = np.random.default_rng(seed).standard_normal(n)
    return np.linalg.eigvalsh(_matrix(*tridiagonal(matvec, start, iterations)))


def rademacher(rng, n: int, count: int | None = None) -> np.ndarray:
    """±1 entries, shape (n,) or (count, n)."""
    shape = (n,) if count is None else (count, n)
    return rng.integers(0, 2, size=shape).astype(np.float64) * 2 - 1


@dataclass
class Quadrature:
    """Stochastic Lanczos quadrature: ``nodes``, ``weights`` (summing to 1) and ``probe``,
    the probe each node came from (for the spread over probes)."""

    nodes: np.ndarray
    weights: np.ndarray
    probe: np.ndarray

    def moment(self, power: int) -> float:
        """Σ w θ^p: an estimate of tr(H^p)/n (exact in expectation for p < 2k)."""
        return float(self.weights @ self.nodes ** power)

    def probe_moments(self, power: int) -> np.ndarray:
        """The moment from each probe alone (its mean is ``moment``)."""
        count = int(self.probe.max()) + 1
        return np.bincount(self.probe, self.weights * self.nodes ** power,
                           minlength=count) * count


def quadrature(matvec, start: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) of the Lanczos quadrature from one ``start``."""
    theta, vectors = np.linalg.eigh(_matrix(*tridiagonal(matvec, start, iterations)))
    return theta, vectors[0] ** 2


def slq(matvec, n: int, probes: int, iterations: int, seed: int = 0) -> Quadrature:
    """``probes`` runs of ``iterations`` Lanczos steps from unit Rademacher probes."""
    rng = np.random.default_rng([seed, 23])
    runs = [quadrature(matvec, rademacher(rng, n), iterations) for _ in range(probes)]
    return Quadrature(np.concatenate([nodes for nodes, _ in runs]),
                      np.concatenate([weights / probes for _, weights in runs]),
                      np.concatenate([np.full(nodes.size, p) for p, (nodes, _) in
                                      enumerate(runs)]))


def block_lambda_max(matvec, n: int, indices: np.ndarray, iterations: int,
                     seed: int = 0) -> float:
    """λ_max of the diagonal block of ``matvec``'s matrix on ``indices``."""
    def block(u):
        full = np.zeros(n)
        full[indices] = u
        return matvec(full)[indices]

    return float(lanczos(block, indices.size, iterations, seed)[-1])
