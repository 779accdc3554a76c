"""A linear or logistic version is explained against the mean of its drift reference in its model's own
features once one is sent (``"explanation_baseline": "reference"``), else against the all-zeros row of those
features (``"zeros"``); either way its values are shap.LinearExplainer's with that background mean (to 1e-8)
and add up to the decision function (to 1e-9). A reference sent again moves the baseline at once, and the
logged explanations follow it too."""
import time
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from api.settings import settings_of
from tests.helpers import upload_ok

shap = pytest.importorskip("shap")

RNG = np.random.default_rng(5)
X = RNG.normal(size=(300, 3)) * [1.0, 4.0, 0.5] + [2.0, -1.0, 3.0]
NAMES = ["x0", "x1", "x2"]
TARGET = X @ [1.5, -0.25, 2.0]
THREE = np.digitize(TARGET - TARGET.mean(), [-1.0, 1.0])
ROWS = X[:6]
URL = "/models/m/1/predict"
REFERENCE = "/models/m/versions/1/reference"

# name: (model, its last step's features from rows, the answer the values add up to)
MODELS = {
    "linear": (lambda: LinearRegression().fit(X, TARGET), lambda m, r: m.predict(r)),
    "logistic-binary": (lambda: LogisticRegression().fit(X, TARGET > TARGET.mean()), lambda m, r: m.decision_function(r)),
    "logistic-multiclass-scaled": (lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(X, THREE),
                                   lambda m, r: m.decision_function(r)),
}


def _parts(model):
    """(the steps before the model as one transform, the model itself)."""
    if hasattr(model, "steps"):
        return (lambda rows: model[:-1].transform(rows)), model.steps[-1][1]
    return (lambda rows: rows), model


def _shap(model, rows, background_mean):
    transform, last = _parts(model)
    features = transform(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.LinearExplainer(last, (background_mean, np.eye(len(background_mean))),
                                         feature_perturbation="interventional")
        values = np.asarray(explainer.shap_values(features))
    return np.atleast_1d(explainer.expected_value), values.reshape(len(rows), features.shape[1], -1)


def _explained(client, rows=ROWS) -> dict:
    response = client.post(URL, json={"instances": rows.tolist(), "explain": True})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _check(body, name, model, background_mean):
    base, values = _shap(model, ROWS, background_mean)
    answer = np.asarray(MODELS[name][1](model, ROWS), dtype=np.float64).reshape(len(ROWS), -1)
    for i, explanation in enumerate(body["explanations"]):
        got = np.array([np.atleast_1d(explanation["values"][name]) for name in NAMES], dtype=np.float64)
        got_base = np.atleast_1d(explanation["base_value"])
        np.testing.assert_allclose(got, values[i], rtol=0, atol=1e-8)
        np.testing.assert_allclose(got_base, base, rtol=0, atol=1e-8)
        np.testing.assert_allclose(got_base + got.sum(axis=0), answer[i], rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def fitted():
    return {name: make() for name, (make, _) in MODELS.items()}


@pytest.mark.parametrize("name", MODELS)
def test_without_a_reference_the_values_are_shaps_against_the_all_zeros_row(client, ci, fitted, name):
    model = fitted[name]
    upload_ok(client, ci, "m", model, {"feature_names": NAMES})
    body = _explained(client)
    assert body["explanation_baseline"] == "zeros"
    _check(body, name, model, np.zeros(len(NAMES)))


@pytest.mark.parametrize("name", MODELS)
def test_with_a_reference_the_values_are_shaps_against_its_mean_in_the_models_features(client, ci, fitted, name):
    model = fitted[name]
    upload_ok(client, ci, "m", model, {"feature_names": NAMES})
    before = _explained(client)  # read (and kept by this process) before the reference is sent
    reference = X[100:300]
    sent = client.put(REFERENCE, json={"source": "training", "instances": reference.tolist()}, headers=ci)
    assert sent.status_code == 200, sent.get_json()

    body = _explained(client)

    assert (before["explanation_baseline"], body["explanation_baseline"]) == ("zeros", "reference")
    assert body["predictions"] == before["predictions"]
    transform, _ = _parts(model)
    _check(body, name, model, transform(reference).mean(axis=0))


def test_a_reference_sent_again_moves_the_baseline_at_once(client, ci, fitted):
    model = fitted["logistic-binary"]
    upload_ok(client, ci, "m", model, {"feature_names": NAMES})
    for rows in (X[:50], X[200:300] * 2):
        sent = client.put(REFERENCE, json={"source": "evaluation", "instances": rows.tolist()}, headers=ci)
        assert sent.status_code == 200
        body = _explained(client)
        assert body["explanation_baseline"] == "reference"
        _check(body, "logistic-binary", model, rows.mean(axis=0))
    # a row at the reference's mean is explained as nothing but the base value
    at_mean = _explained(client, (X[200:300] * 2).mean(axis=0)[None])
    assert at_mean["explanations"][0]["values"] == pytest.approx(dict.fromkeys(NAMES, 0.0), abs=1e-12)


def test_a_tree_versions_reference_leaves_its_explanations_on_its_covers(client, ci):
    from sklearn.tree import DecisionTreeRegressor

    tree = DecisionTreeRegressor(max_depth=3).fit(X, TARGET)
    upload_ok(client, ci, "m", tree, {"feature_names": NAMES})
    before = _explained(client)
    assert client.put(REFERENCE, json={"source": "training", "instances": X[:50].tolist()}, headers=ci).status_code == 200
    after = _explained(client)
    assert before == after and after["explanation_baseline"] == "covers"
    assert "explain_mean" not in str(client.get(REFERENCE).get_json())


def test_logged_explanations_are_measured_from_the_same_reference_mean(build_app, ci, fitted, tokens):
    app = build_app(PREDICTION_LOG_SAMPLE=1.0)
    client = app.test_client()
    model = fitted["logistic-binary"]
    upload_ok(client, ci, "m", model, {"feature_names": NAMES})
    assert client.patch("/models/m", json={"prediction_log": {"explain": 1.0}}, headers=ci).status_code == 200
    reference = X[100:300]
    assert client.put(REFERENCE, json={"source": "training", "instances": reference.tolist()},
                      headers=ci).status_code == 200

    asked = _explained(client)
    assert client.post(URL, json={"instances": ROWS.tolist()}).status_code == 200
    assert app.extensions["model_registry"].prediction_log.flush(), "the prediction log did not drain"

    analyst = tokens("analyst", "analyst")
    logged = client.get("/models/m/predictions?limit=10", headers=analyst).get_json()["items"]
    assert len(logged) == 2 and all(item["explanations"] is not None for item in logged)
    base, values = _shap(model, ROWS, reference.mean(axis=0))
    for item in logged:
        explained = item["explanations"]
        assert explained["base_value"] == pytest.approx(asked["explanations"][0]["base_value"], abs=1e-12)
        np.testing.assert_allclose(np.atleast_1d(explained["base_value"]), base, rtol=0, atol=1e-8)
        np.testing.assert_allclose(np.asarray(explained["values"]).reshape(values.shape), values, rtol=0, atol=1e-8)


def test_another_worker_learns_of_a_new_reference_within_its_refresh(app, client, ci, fitted, build_app):
    model = fitted["linear"]
    upload_ok(client, ci, "m", model, {"feature_names": NAMES})
    other = build_app(artifact_root=settings_of(app).storage.artifact_root, WATCH_ALIASES=True, ALIAS_REFRESH_SECONDS=0.2)
    try:
        worker = other.test_client()
        assert _explained(worker)["explanation_baseline"] == "zeros"  # read and kept by the other worker
        reference = X[:120]
        assert client.put(REFERENCE, json={"source": "training", "instances": reference.tolist()},
                          headers=ci).status_code == 200
        deadline = time.monotonic() + 10
        while _explained(worker)["explanation_baseline"] != "reference":
            assert time.monotonic() < deadline, "the other worker kept the all-zeros baseline"
            time.sleep(0.05)
        _check(_explained(worker), "linear", model, reference.mean(axis=0))
    finally:
        other.extensions["model_registry"].runtime.models.stop()
