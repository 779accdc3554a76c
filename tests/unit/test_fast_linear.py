"""Linear and logistic models predict through their own arithmetic with exactly scikit-learn's answers."""
from contextlib import nullcontext

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from registry.inference.predictors import LinearPredictor, predictor_for

CASES = 60
ROWS = 1000
REGRESSORS = (LinearRegression, Ridge, Lasso, ElasticNet)
LABELS = (np.array([4, -1, 9, 0]), np.array(["spam", "ham", "eggs", "bacon"]))


def random_model(seed: int):
    """A fitted linear regressor or logistic regression (binary or multiclass), bare or scaled, and its rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(int(rng.integers(20, 120)), int(rng.integers(1, 9)))) * 10.0 ** rng.integers(-3, 4)
    if seed % 2:
        labels = LABELS[seed % 4 // 2][: int(rng.integers(2, 5))]
        y = labels[((X[:, 0] > 0) + rng.integers(0, len(labels), len(X))) % len(labels)]
        model = LogisticRegression(C=float(10.0 ** rng.integers(-2, 3)), fit_intercept=bool(seed % 3), max_iter=500)
    else:
        y = X @ rng.normal(size=X.shape[1]) + rng.normal(size=len(X))
        model = REGRESSORS[seed // 2 % len(REGRESSORS)](fit_intercept=bool(seed % 3))
    if seed % 5 == 0:
        model = make_pipeline(StandardScaler(), model)
    rows = np.concatenate([X, rng.normal(size=(ROWS - len(X), X.shape[1])) * 1e3])
    rows[rng.random(rows.shape) < 0.05] = -0.0
    return model.fit(X, y), rows


@pytest.mark.parametrize("seed", range(CASES))
def test_linear_predictions_equal_scikit_learns_bit_for_bit(seed):
    model, rows = random_model(seed)
    predictor = predictor_for(model)
    assert isinstance(predictor, LinearPredictor)
    with sklearn.config_context(assume_finite=True):
        for piece in (rows, rows[:1], rows[500:501], rows[:64]):
            ours, theirs = predictor.predict(piece), model.predict(piece)
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
            if ours.dtype.kind == "f":
                assert np.array_equal(np.signbit(ours), np.signbit(theirs))
            if hasattr(model, "predict_proba"):
                assert np.array_equal(predictor.predict_proba(piece), model.predict_proba(piece))
                labels, proba = predictor.predict_and_proba(piece)  # one product for both: the same answers
                assert labels.dtype == theirs.dtype and np.array_equal(labels, theirs)
                assert np.array_equal(proba, model.predict_proba(piece))


def test_rows_that_are_not_a_float_array_go_to_scikit_learn():
    X = np.random.default_rng(0).normal(size=(30, 2))
    model = LinearRegression().fit(X, X[:, 0])
    rows = X.astype(np.float32)
    assert np.array_equal(predictor_for(model).predict(rows), model.predict(rows))


def test_only_predictions_that_call_scikit_learn_pay_for_its_config_context(monkeypatch):
    from registry.serving import running

    entered = []
    monkeypatch.setattr(sklearn, "config_context", lambda **options: entered.append(options) or nullcontext())
    bare, _ = random_model(1)  # a bare logistic regression: its probabilities are computed here too
    scaled, _ = random_model(5)  # a logistic regression behind a scaler
    for model, proba, expected in [(bare, False, []), (bare, True, []), (scaled, False, [{"assume_finite": True}]),
                                   (scaled, True, [{"assume_finite": True}])]:
        entered.clear()
        with running._finiteness_assumed(predictor_for(model), proba):
            pass
        assert entered == expected
    entered.clear()
    with running._finiteness_assumed(LogisticRegression(), False):  # an estimator served as it is
        pass
    assert entered == [{"assume_finite": True}]
