"""Confidence intervals of a proportion, one for every room that needs one (the live quality of a
version, a rollout's gates): Wilson's score interval with SciPy's normal quantile."""
from __future__ import annotations

import math

Z_95 = 1.959963984540054  # z_of(0.05): the standard normal's 97.5 % quantile, without importing SciPy


def z_of(alpha: float) -> float:
    """The normal quantile a two-sided interval at level ``alpha`` uses (one-sided ends at alpha/2 each)."""
    from scipy import stats  # here: SciPy's import is a second of a worker's start, and no request needs it

    return float(stats.norm.ppf(1 - alpha / 2))


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % unless ``z`` says otherwise): sound for small counts and
    near 0 or 1; the same as SciPy's ``binomtest(successes, n).proportion_ci(method="wilson")``, at a
    hundredth of its cost (which computes the test's p-value first)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 and 1 the bound is the proportion itself, which rounding would put a hair past it (0.9999999999999998).
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))
