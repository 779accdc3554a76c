"""Over HTTP, a forest served through its compiled form answers exactly what scikit-learn answers."""
import numpy as np
import pytest
import sklearn
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from api.domain import EXTENSION
from registry.inference.predictors import TreePredictor
from tests.helpers import upload_ok


def rows_on_thresholds(model, n_rows: int) -> np.ndarray:
    """Rows whose values sit exactly on the forest's thresholds or next to them (float32 neighbours)."""
    thresholds = np.concatenate([tree.tree_.threshold[tree.tree_.children_left != -1] for tree in model.estimators_])
    near = np.concatenate([thresholds, np.nextafter(thresholds.astype(np.float32), np.float32(np.inf))])
    return np.random.default_rng(1).choice(near, size=(n_rows, model.n_features_in_)).astype(np.float64)


@pytest.mark.parametrize("forest", [RandomForestClassifier, RandomForestRegressor], ids=["classifier", "regressor"])
@pytest.mark.parametrize("n_rows", [1, 300], ids=["one-row", "batch"])
def test_the_alias_route_answers_a_compiled_forest_exactly_as_scikit_learn(app, client, ci, forest, n_rows):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5)) * [1, 10, 1e-3, 1e5, 1]
    target = X[:, 0] + X[:, 1] / 10 > 0
    classifier = forest is RandomForestClassifier
    y = np.where(target, "approve", "refuse") if classifier else X[:, 0] * 3.3 + target
    model = forest(n_estimators=30, random_state=0).fit(X, y)
    upload_ok(client, ci, "loans", model)
    assert client.post("/models/loans/versions/1/promote", json={}, headers=ci).status_code == 200
    rows = rows_on_thresholds(model, n_rows)

    response = client.post("/models/loans/production/predict", json={"instances": rows.tolist(), "return_proba": classifier})

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    with sklearn.config_context(assume_finite=True):
        assert body["predictions"] == model.predict(rows).tolist()
        if classifier:
            assert body["probabilities"] == model.predict_proba(rows).tolist()
            assert body["classes"] == ["approve", "refuse"]
    with app.app_context():
        served = app.extensions[EXTENSION].runtime.models.servable("loans", "production")
    assert isinstance(served.predictor, TreePredictor)
