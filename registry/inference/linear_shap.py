"""Exact attributions for linear and logistic models: linear SHAP against a reference row.

For ``f(x) = w·x + b`` with the features taken as independent (interventional, as
``shap.LinearExplainer`` with an independent masker computes it), the Shapley value of feature ``i`` is
``w_i (x_i - r_i)`` and ``base_value`` is ``f(r)``, for the reference row ``r``: so ``base_value + Σ values
== f(x)``. A logistic regression's ``f`` is its decision function (log-odds), one per class for more than two.
"""
from __future__ import annotations

import numpy as np


def linear_shap(coef: np.ndarray, intercept, *, rows: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(base_value, values)`` of the linear model ``rows @ coef.T + intercept`` against ``reference``:
    shaped (outputs,) and (rows, features, outputs)."""
    weights = np.atleast_2d(np.asarray(coef, dtype=np.float64))  # (outputs, features)
    reference = np.asarray(reference, dtype=np.float64)
    base = weights @ reference + np.broadcast_to(np.asarray(intercept, dtype=np.float64), len(weights))
    values = (np.asarray(rows, dtype=np.float64) - reference)[:, :, np.newaxis] * weights.T[np.newaxis]
    return base, values
