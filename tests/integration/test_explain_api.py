"""Over HTTP, ``"explain": true`` (or ``?explain=true``) adds each row's attributions per input column, adding
up to the answer in the stated space, on every served kind, pinned or by alias; never changes predictions;
a version that cannot explain, a bad flag and an oversized batch are refused as predict refuses them."""
import io
import json

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeRegressor

from tests.helpers import assert_problem, upload_ok

RNG = np.random.default_rng(3)
X = RNG.normal(size=(300, 4))
X[:, 3] = RNG.integers(0, 4, len(X))
NAMES = ["x0", "x1", "x2", "x3"]
TARGET = X[:, 0] * 2 - X[:, 1] + X[:, 3]
THREE = np.array(["low", "mid", "high"])[np.digitize(TARGET, [-1, 1])]
TWO = (TARGET > 0).astype(int)
ROWS = X[:7]
ENCODED = ColumnTransformer([("onehot", OneHotEncoder(), [3]), ("scaled", StandardScaler(), [0, 1])],
                            remainder="passthrough")

# name: (model, the answer the explanations add up to, their space)
MODELS = {
    "linear": (lambda: LinearRegression().fit(X, TARGET), lambda m, r: m.predict(r), "prediction"),
    "logistic-binary": (lambda: LogisticRegression().fit(X, TWO), lambda m, r: m.decision_function(r), "margin"),
    "logistic-multiclass": (lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(X, THREE),
                            lambda m, r: m.decision_function(r), "margin"),
    "tree": (lambda: DecisionTreeRegressor(max_depth=6).fit(X, TARGET), lambda m, r: m.predict(r), "prediction"),
    "forest-pipeline": (lambda: make_pipeline(ENCODED, RandomForestClassifier(10, max_depth=5, random_state=0)).fit(
        X, THREE), lambda m, r: m.predict_proba(r), "probability"),
    "hist-binary": (lambda: HistGradientBoostingClassifier(max_iter=10).fit(X, TWO),
                    lambda m, r: m.decision_function(r), "margin"),
    "gradient-multiclass": (lambda: GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, THREE),
                            lambda m, r: m.decision_function(r), "margin"),
}


@pytest.fixture(scope="module")
def fitted():
    return {name: make() for name, (make, _, _) in MODELS.items()}


def _explained(client, url: str, rows, **body):
    response = client.post(url, json={"instances": rows.tolist(), **body})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize("name", MODELS)
def test_explanations_add_up_to_the_answer_in_their_space_per_input_column(client, ci, fitted, name):
    model, (_, answer, space) = fitted[name], MODELS[name]
    upload_ok(client, ci, "loans", model, {"feature_names": NAMES} if not hasattr(model, "feature_names_in_") else None)
    assert client.post("/models/loans/versions/1/promote", json={}, headers=ci).status_code == 200
    plain = _explained(client, "/models/loans/production/predict", ROWS)
    body = _explained(client, "/models/loans/production/predict", ROWS, explain=True)

    assert body["predictions"] == plain["predictions"] and "explanations" not in plain
    assert body["explanation_space"] == space
    expected = np.asarray(answer(model, ROWS), dtype=np.float64)
    assert len(body["explanations"]) == len(ROWS)
    for row, explanation, want in zip(ROWS, body["explanations"], expected):
        assert list(explanation["values"]) == NAMES
        values = np.array(list(explanation["values"].values()), dtype=np.float64)
        total = np.asarray(explanation["base_value"]) + values.sum(axis=0)
        np.testing.assert_allclose(total, want, rtol=0, atol=1e-9)


def test_the_query_flag_explains_a_pinned_version_and_a_csv_body(client, ci, fitted):
    upload_ok(client, ci, "loans", fitted["tree"], {"feature_names": NAMES})
    by_query = client.post("/models/loans/1/predict?explain=true", json={"instances": ROWS.tolist()})
    assert by_query.status_code == 200 and len(by_query.get_json()["explanations"]) == len(ROWS)
    csv = "x0,x1,x2,x3\n" + "\n".join(",".join(map(repr, row)) for row in ROWS.tolist()) + "\n"
    by_csv = client.post("/models/loans/1/predict?explain=true", data=csv, content_type="text/csv")
    assert by_csv.status_code == 200
    assert by_csv.get_json()["explanations"] == by_query.get_json()["explanations"]


def test_a_standardized_linear_model_is_explained_against_the_training_mean(client, ci):
    model = make_pipeline(SimpleImputer(), StandardScaler(), LinearRegression()).fit(X, TARGET)
    upload_ok(client, ci, "loans", model, {"feature_names": NAMES})
    rows = np.vstack([X[:5], X.mean(axis=0)])
    body = _explained(client, "/models/loans/1/predict", rows, explain=True)
    for row, explanation in zip(rows, body["explanations"]):
        assert list(explanation["values"]) == NAMES
        total = explanation["base_value"] + sum(explanation["values"].values())
        assert total == pytest.approx(model.predict(row[None])[0], abs=1e-9)
    assert body["explanations"][0]["base_value"] == pytest.approx(TARGET.mean(), abs=1e-9)
    assert body["explanations"][-1]["values"] == pytest.approx(dict.fromkeys(NAMES, 0.0), abs=1e-12)


def test_a_version_without_node_covers_answers_422_naming_why(client, ci):
    xgboost = pytest.importorskip("xgboost")
    booster = xgboost.train({"objective": "reg:squarederror", "max_depth": 3}, xgboost.DMatrix(X, TARGET), 3)
    document = json.loads(bytes(booster.save_raw("json")))
    for tree in document["learner"]["gradient_booster"]["model"]["trees"]:
        del tree["sum_hessian"]
    form = {"artifact": (io.BytesIO(json.dumps(document).encode()), "model.json")}
    assert client.post("/models/gbm/versions", data=form, headers=ci, content_type="multipart/form-data"
                       ).status_code == 201
    assert client.post("/models/gbm/1/predict", json={"instances": ROWS.tolist()}).status_code == 200
    assert_problem(client.post("/models/gbm/1/predict", json={"instances": ROWS.tolist(), "explain": True}), 422,
                   "cannot be explained", "holds no node covers")
    v2 = client.post("/v2/models/gbm/versions/1/infer", json={
        "inputs": [{"name": "input-0", "shape": list(ROWS.shape), "datatype": "FP64", "data": ROWS.tolist()}],
        "outputs": [{"name": "explanation"}]})
    assert v2.status_code == 400 and "holds no node covers" in v2.get_json()["error"]


@pytest.mark.parametrize("body, query, fragment", [
    ({"explain": "yes"}, "", 'explain must be true, false or {"space": "<space>"}'),
    ({"explain": 1}, "", 'explain must be true, false or {"space": "<space>"}'),
    ({}, "?explain=maybe", "explain must be true, false or a space (prediction, probability, margin), not 'maybe'"),
])
def test_a_flag_that_is_not_true_false_or_a_space_is_422(client, ci, fitted, body, query, fragment):
    upload_ok(client, ci, "loans", fitted["tree"], {"feature_names": NAMES})
    assert_problem(client.post(f"/models/loans/1/predict{query}", json={"instances": ROWS.tolist(), **body}), 422,
                   fragment)


def test_explain_on_a_batch_past_max_batch_rows_is_413_as_predict_is(build_app, ci, fitted):
    client = build_app(MAX_BATCH_ROWS=10).test_client()
    upload_ok(client, ci, "loans", fitted["forest-pipeline"])
    rows = np.repeat(ROWS, 2, axis=0)
    plain = client.post("/models/loans/1/predict", json={"instances": rows.tolist()})
    explained = client.post("/models/loans/1/predict?explain=true", json={"instances": rows.tolist(), "explain": True})
    assert_problem(explained, 413, "batch has 14 rows; the limit is 10")
    assert explained.get_json()["detail"] == plain.get_json()["detail"]
    assert _explained(client, "/models/loans/1/predict", rows[:10], explain=True)["explanations"]


@pytest.mark.parametrize("route", ["/models/loans/1/predict", "/models/loans/production/predict"])
def test_explaining_more_rows_than_max_explain_rows_is_413_while_predicting_them_is_not(build_app, ci, fitted, route):
    """An explanation costs tens of predictions a row: one anonymous request may not make a worker explain
    a whole batch of MAX_BATCH_ROWS on a large forest."""
    client = build_app(MAX_EXPLAIN_ROWS=6).test_client()
    upload_ok(client, ci, "loans", fitted["forest-pipeline"])
    assert client.post("/models/loans/versions/1/promote", json={}, headers=ci).status_code == 200
    rows = np.repeat(ROWS, 2, axis=0)

    explained = client.post(route, json={"instances": rows.tolist(), "explain": True})

    assert_problem(explained, 413, "asked to explain 14 rows; the limit is 6 (MAX_EXPLAIN_ROWS)")
    assert client.post(route, json={"instances": rows.tolist()}).status_code == 200
    assert len(_explained(client, route, rows[:6], explain=True)["explanations"]) == 6


def test_an_anonymous_caller_gets_no_explanation_where_reads_need_a_token(build_app, ci, fitted):
    client = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()
    upload_ok(client, ci, "loans", fitted["tree"], {"feature_names": NAMES})
    response = client.post("/models/loans/1/predict", json={"instances": ROWS.tolist(), "explain": True})
    assert response.status_code == 401
    assert "explanations" not in response.get_data(as_text=True)


def test_v2_answers_an_explanation_output_of_one_json_document_per_row(client, ci, fitted):
    upload_ok(client, ci, "loans", fitted["forest-pipeline"])
    rows = ROWS[:3]
    v2 = client.post("/v2/models/loans/versions/1/infer", json={
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.tolist()}],
        "outputs": [{"name": "predict"}, {"name": "explanation"}]})
    assert v2.status_code == 200, v2.get_json()
    [predicted, explained] = v2.get_json()["outputs"]
    ours = _explained(client, "/models/loans/1/predict", rows, explain=True)
    assert predicted["data"] == ours["predictions"]
    assert (explained["datatype"], explained["shape"]) == ("BYTES", [3])
    assert explained["parameters"] == {"explanation_space": "probability", "explanation_baseline": "covers"}
    assert [json.loads(document) for document in explained["data"]] == ours["explanations"]
    metadata = client.get("/v2/models/loans/versions/1").get_json()
    assert {"name": "explanation", "datatype": "BYTES", "shape": [-1]} in metadata["outputs"]


def test_v2_binary_explanations_round_trip_through_tritons_client(client, ci, fitted):
    triton = pytest.importorskip("tritonclient.http")
    upload_ok(client, ci, "loans", fitted["hist-binary"], {"feature_names": NAMES})
    matrix = triton.InferInput("input-0", list(ROWS.shape), "FP64")
    matrix.set_data_from_numpy(ROWS)
    body, size = triton.InferenceServerClient.generate_request_body(
        [matrix], outputs=[triton.InferRequestedOutput("explanation", binary_data=True)])
    response = client.post("/v2/models/loans/versions/1/infer", data=body,
                           headers={"Inference-Header-Content-Length": str(size)})
    assert response.status_code == 200, response.get_data(as_text=True)
    result = triton.InferenceServerClient.parse_response_body(
        response.get_data(), header_length=response.headers.get("Inference-Header-Content-Length"))
    documents = [json.loads(item) for item in result.as_numpy("explanation")]
    margins = fitted["hist-binary"].decision_function(ROWS)
    for document, margin in zip(documents, margins):
        assert document["base_value"] + sum(document["values"].values()) == pytest.approx(margin, abs=1e-9)
