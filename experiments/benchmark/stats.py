"""The paired test behind the benchmark's verdicts, vectorised: one table or thousands.

Every function takes the per-cell differences ``d`` of a claim, shaped ``(..., n)``, with a
boolean ``mask`` of the cells that count (``(..., n)``, default all), so that the report
(one claim, a few dozen cells) and the power simulation (thousands of simulated tables at
once, ``experiments.benchmark.power``) run the same arithmetic. Student's t over the cells:

* ``mean``, ``se`` = sd / √n, df = n − 1;
* the two-sided p-value of "the mean is 0", and the equivalence p-value of "the mean lies
  outside ±margin" (two one-sided tests, doubled, so that p_eq ≤ α exactly when the
  two-sided 1 − α interval lies inside ±margin);
* an interval at ``level``.

No variance (every cell the same difference): a mean of 0 gives p = 1, any other mean
p = 0 and a zero-width interval (the design's own floor is checked apart, ``sign_floor``).
Holm's step-down adjustment of a family of p-values closes the module.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def paired_t(d, mask=None, level: float = 0.95, margin: float = 0.0) -> dict:
    """Student's t over the last axis of ``d`` (only the cells where ``mask``).

    Returns arrays (the shape of ``d`` without its last axis): ``n``, ``mean``, ``se``,
    ``low``, ``high`` (the ``level`` interval), ``p`` (two-sided, mean = 0), ``p_eq``
    (equivalence within ±``margin``; 1 where ``margin`` is 0) and ``nonzero`` (cells with
    d ≠ 0, for ``sign_floor``). ``n`` < 2 gives NaN everywhere but ``n``.
    """
    d = np.asarray(d, float)
    mask = np.ones(d.shape, bool) if mask is None else np.broadcast_to(mask, d.shape)
    x = np.where(mask, d, 0.0)
    n = mask.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.sum(axis=-1) / n
        dev = np.where(mask, d - mean[..., None], 0.0)
        sd = np.sqrt((dev ** 2).sum(axis=-1) / (n - 1))
        se = sd / np.sqrt(n)
        df = np.maximum(n - 1, 1).astype(float)
        flat = se <= 1e-12 * np.maximum(1.0, np.abs(mean))
        t = np.where(flat, np.where(mean == 0, 0.0, np.copysign(np.inf, mean)), mean / se)
        p = np.where(flat & (mean == 0), 1.0, 2.0 * special.stdtr(df, -np.abs(t)))
        q = special.stdtrit(df, 0.5 + level / 2.0)
        half = np.where(flat, 0.0, q * se)
        # equivalence: H0 mean <= -margin (reject when large t_low), H0 mean >= margin
        t_low = np.where(flat, np.where(mean + margin > 0, np.inf, -np.inf),
                         (mean + margin) / se)
        t_high = np.where(flat, np.where(mean - margin < 0, -np.inf, np.inf),
                          (mean - margin) / se)
        p_eq = 2.0 * np.maximum(special.stdtr(df, -t_low), special.stdtr(df, t_high))
        p_eq = np.where(margin > 0, np.minimum(p_eq, 1.0), 1.0)
    few = n < 2
    nan = np.nan
    return {"n": n, "mean": np.where(few, nan, mean), "se": np.where(few, nan, se),
            "low": np.where(few, nan, mean - half), "high": np.where(few, nan, mean + half),
            "p": np.where(few, nan, p), "p_eq": np.where(few, nan, p_eq),
            "nonzero": (mask & (d != 0)).sum(axis=-1)}


def sign_floor(nonzero) -> np.ndarray:
    """The smallest two-sided p-value a distribution-free (sign-flip) test can give with
    ``nonzero`` non-zero paired differences: 2 / 2^n. A design whose floor lies above the
    level it is read at cannot decide, whatever the t-test says."""
    return np.minimum(1.0, 2.0 ** (1.0 - np.asarray(nonzero, float)))


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values of a family (NaN entries are not in the family
    and stay NaN): a hypothesis is rejected at family level α exactly when its adjusted
    p ≤ α."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    keep = np.flatnonzero(np.isfinite(p))
    m = len(keep)
    if not m:
        return out
    order = keep[np.argsort(p[keep], kind="stable")]
    steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(steps)
    return out


def normal_quantile(u) -> np.ndarray:
    """Φ⁻¹(u), elementwise."""
    return special.ndtri(np.asarray(u, float))
