"""Over HTTP, a boosted model uploads as the kind ``boosting``, promotes, and answers through its compiled
form exactly what scikit-learn answers; V2 metadata and the dashboard name its kind."""
import numpy as np
import pytest
import sklearn
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from api.domain import EXTENSION
from registry.inference.fast_boosting import CompiledBoosting
from registry.inference.predictors import TreePredictor
from tests.helpers import assert_problem, upload, upload_ok

RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 4)) * [1, 10, 1e-3, 1]
X[:, 3] = RNG.integers(0, 6, 400)
LABELS = np.array(["approve", "refuse", "review"])
BINARY = LABELS[((X[:, 0] > 0) ^ np.isin(X[:, 3], [1, 4])).astype(int)]
MULTICLASS = LABELS[(X[:, 0] > 0).astype(int) + (X[:, 1] > 5)]
TARGET = X[:, 0] * 3.3 + X[:, 3]

MODELS = {
    "hgb-binary-categorical": lambda: HistGradientBoostingClassifier(max_iter=30, categorical_features=[3],
                                                                     random_state=0).fit(X, BINARY),
    "hgb-multiclass": lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, MULTICLASS),
    "hgb-regressor-pipeline": lambda: make_pipeline(StandardScaler(), HistGradientBoostingRegressor(max_iter=20)).fit(
        X, TARGET),
    "gb-multiclass": lambda: GradientBoostingClassifier(n_estimators=10, random_state=0).fit(X, MULTICLASS),
    "gb-regressor": lambda: GradientBoostingRegressor(n_estimators=10, random_state=0).fit(X, TARGET),
}


def rows_near_thresholds(model, n_rows: int) -> np.ndarray:
    """Rows of the training data, with values on the model's float64 thresholds and beside them."""
    model = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(model, "_predictors"):
        nodes = np.concatenate([p.nodes for iteration in model._predictors for p in iteration])
        found = nodes["num_threshold"][(nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 0)]
    else:
        found = np.concatenate([t.tree_.threshold[t.tree_.children_left != -1] for t in model.estimators_.ravel()])
    rng = np.random.default_rng(1)
    rows = X[rng.integers(0, len(X), n_rows)].copy()
    near = np.concatenate([found, np.nextafter(found, np.inf), np.nextafter(found, -np.inf)])
    rows[:, :3] = rng.choice(near, size=(n_rows, 3))
    rows[:, 3] = rng.choice([0.0, 1.0, 4.0, 5.0, 9.0, -1.0], size=n_rows)  # 9 and -1: categories never seen
    return rows


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("n_rows", [1, 200], ids=["one-row", "batch"])
def test_a_boosted_model_is_served_compiled_and_answers_exactly_as_scikit_learn(app, client, ci, name, n_rows):
    model = MODELS[name]()
    classifier = hasattr(model, "classes_")
    upload_ok(client, ci, "loans", model)
    version = client.get("/models/loans/versions/1", headers=ci).get_json()
    assert (version["kind"], version["framework"]) == ("boosting", "scikit-learn")
    assert client.post("/models/loans/versions/1/promote", json={}, headers=ci).status_code == 200
    rows = rows_near_thresholds(model, n_rows)

    response = client.post("/models/loans/production/predict",
                           json={"instances": rows.tolist(), "return_proba": classifier})

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    with sklearn.config_context(assume_finite=True):
        assert body["predictions"] == model.predict(rows).tolist()
        if classifier:
            assert body["probabilities"] == model.predict_proba(rows).tolist()
    with app.app_context():
        served = app.extensions[EXTENSION].runtime.models.servable("loans", "production")
    assert isinstance(served.predictor, TreePredictor) and isinstance(served.predictor.compiled, CompiledBoosting)
    metadata = client.get("/v2/models/loans").get_json()
    assert metadata["parameters"]["kind"] == "boosting"


def test_the_dashboard_names_the_boosting_kind(client, ci):
    upload_ok(client, ci, "loans", MODELS["gb-regressor"]())
    for url in ("/ui/models/loans", "/ui/models/loans/versions/1"):
        page = client.get(url)
        assert page.status_code == 200
        assert "boosting" in page.get_data(as_text=True), url


def test_a_gradient_boosting_model_with_its_own_init_is_refused_with_what_to_change(client, ci):
    model = GradientBoostingRegressor(n_estimators=3, init=LinearRegression()).fit(X, TARGET)

    assert_problem(upload(client, ci, "loans", model), 422, "init=None")
