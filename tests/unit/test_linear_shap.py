"""Linear SHAP (registry.inference.linear_shap): exactly the Shapley values of the interventional value
function, shap.LinearExplainer's values, and adding up to the decision function."""
import itertools
import math
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from registry.inference.linear_shap import linear_shap

shap = pytest.importorskip("shap")

RNG = np.random.default_rng(7)
X = RNG.normal(size=(200, 6)) * [1, 5, 0.1, 1, 2, 1]
TARGET = X @ [1.0, -0.5, 3.0, 0.0, 2.0, 0.1] + RNG.normal(size=len(X))
MODELS = {
    "linear": lambda: LinearRegression().fit(X, TARGET),
    "ridge": lambda: Ridge().fit(X, TARGET),
    "logistic-binary": lambda: LogisticRegression().fit(X, TARGET > 0),
    "logistic-multiclass": lambda: LogisticRegression(max_iter=500).fit(X, np.digitize(TARGET, [-2, 2])),
}


def _scores(model, rows) -> np.ndarray:
    scores = model.decision_function(rows) if hasattr(model, "decision_function") else model.predict(rows)
    return scores.reshape(len(rows), -1)


@pytest.mark.parametrize("name", MODELS)
def test_values_add_up_to_the_decision_function_and_equal_shaps_linear_explainer(name):
    model = MODELS[name]()
    mean = X.mean(axis=0)
    base, values = linear_shap(model.coef_, model.intercept_, rows=X[:20], reference=mean)
    np.testing.assert_allclose(base + values.sum(axis=1), _scores(model, X[:20]), rtol=0, atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.LinearExplainer(model, (mean, np.cov(X.T)), feature_perturbation="interventional")
        expected = np.asarray(explainer.shap_values(X[:20]))
    np.testing.assert_allclose(values, expected.reshape(values.shape), rtol=0, atol=1e-8)
    np.testing.assert_allclose(base, np.atleast_1d(explainer.expected_value), rtol=0, atol=1e-8)


def test_values_equal_brute_force_shapley_values_against_the_reference_row():
    model = MODELS["logistic-multiclass"]()
    reference, row = X.mean(axis=0), X[3]
    _, values = linear_shap(model.coef_, model.intercept_, rows=row[None], reference=reference)

    def v(known: frozenset) -> np.ndarray:
        mixed = np.where(np.isin(np.arange(6), list(known)), row, reference)
        return _scores(model, mixed[None])[0]

    expected = np.zeros((6, 3))
    for i in range(6):
        for size in range(6):
            for subset in itertools.combinations([j for j in range(6) if j != i], size):
                weight = math.factorial(size) * math.factorial(5 - size) / math.factorial(6)
                expected[i] += weight * (v(frozenset(subset) | {i}) - v(frozenset(subset)))
    np.testing.assert_allclose(values[0], expected, rtol=0, atol=1e-12)
    unused = linear_shap(np.array([[1.0, 0.0]]), [0.5], rows=np.array([[3.0, 7.0]]), reference=np.zeros(2))[1]
    assert unused[0, 1, 0] == 0
