"""The trace of a symmetric operator from its products: Hutch++ (Meyer, Musco, Musco,
Woodruff 2021).

Hutchinson's estimator zᵀHz with Rademacher z has variance 2 Σ_{i≠j} H_ij²: a few large
eigenvalues (the outliers of a network's Hessian) dominate it. Hutch++ spends its m
products in three equal parts: Y = H S for a random S (n × m/3), Q an orthonormal basis of
Y (H's top range), tr(QᵀHQ) taken exactly, and Hutchinson with m/3 vectors on the rest
(I − QQᵀ) H (I − QQᵀ). Its error falls as O(1/m) instead of O(1/√m).
"""

from __future__ import annotations

import numpy as np

from experiments.curvature.lanczos import rademacher, single_threaded_blas


@single_threaded_blas
def hutchpp(matvec, n: int, products: int, seed: int = 0) -> float:
    """Hutch++ with ``products`` (≥ 3) products of ``matvec`` on R^n."""
    k = max(1, products // 3)
    rng = np.random.default_rng([seed, 2021])
    sketch = rademacher(rng, n, k)
    q, _ = np.linalg.qr(np.stack([matvec(s) for s in sketch], axis=1))  # (n, k)
    top = sum(float(col @ matvec(col)) for col in q.T)
    rest = rademacher(rng, n, k)
    rest -= (rest @ q) @ q.T  # (I − QQᵀ) g, each row
    return top + sum(float(g @ matvec(g)) for g in rest) / k
