"""Missing values over the wire (issue 42): a version whose library defines where a missing value goes
(an XGBoost or LightGBM file, a bare HistGradientBoosting model) says ``missing_values`` in its
signature and takes JSON ``null`` and an empty CSV cell as NaN, answering what the library answers for
NaN, bit for bit (V2 takes NaN, as KServe's servers do); every other version still refuses them with 422, and ±Infinity stays refused."""
import io
import json

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.helpers import assert_problem, upload_ok

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")
NAMES = ["a", "b", "c"]
RNG = np.random.default_rng(7)
X = RNG.normal(size=(500, 3))
X[RNG.random(X.shape) < 0.15] = np.nan  # the models learn where missing values go
Y = (np.nan_to_num(X[:, 0], nan=1.0) + np.nan_to_num(X[:, 1]) > 0).astype(int)
ROWS = np.round(RNG.normal(size=(40, 3)), 6)
ROWS[RNG.random(ROWS.shape) < 0.3] = np.nan
ROWS[0] = np.nan  # a row with nothing known


def _file_upload(client, ci, name: str, data: bytes):
    form = {"artifact": (io.BytesIO(data), "model")}
    response = client.post(f"/models/{name}/versions", data=form, headers=ci, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()


def _served(client, ci, name: str) -> None:
    assert client.post(f"/models/{name}/versions/1/promote", json={}, headers=ci).status_code == 200


def _with_nulls(rows: np.ndarray) -> list[list]:
    return [[None if np.isnan(v) else float(v) for v in row] for row in rows]


def _csv(rows: np.ndarray) -> str:
    lines = [",".join(NAMES)] + [",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def _library_probabilities(name: str, model) -> list[float]:
    if name == "xgboost":
        return model.predict(xgb.DMatrix(ROWS, feature_names=NAMES)).astype(np.float64).tolist()
    if name == "lightgbm":
        return model.predict(ROWS, num_threads=1).tolist()
    return model.predict_proba(ROWS)[:, 1].tolist()


@pytest.fixture
def models(client, ci):
    """The three kinds that take missing values, uploaded and promoted: name -> the library's model."""
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                        xgb.DMatrix(X, label=Y, feature_names=NAMES), 15)
    _file_upload(client, ci, "xgboost", bytes(booster.save_raw("json")))
    gbm = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1},
                    lgb.Dataset(X, label=Y, feature_name=NAMES), 15)
    _file_upload(client, ci, "lightgbm", gbm.model_to_string().encode())
    histogram = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, Y)
    upload_ok(client, ci, "histogram", histogram, metadata={"feature_names": NAMES})
    for name in ("xgboost", "lightgbm", "histogram"):
        _served(client, ci, name)
    return {"xgboost": booster, "lightgbm": gbm, "histogram": histogram}


@pytest.mark.parametrize("name", ["xgboost", "lightgbm", "histogram"])
def test_null_and_empty_cells_are_missing_values_answered_as_the_library_answers_nan(client, models, name):
    expected = _library_probabilities(name, models[name])
    assert client.get(f"/models/{name}/versions/1").get_json()["signature"]["missing_values"] is True
    bodies = [
        {"instances": _with_nulls(ROWS)},
        {"dataframe_split": {"columns": NAMES[::-1], "data": [row[::-1] for row in _with_nulls(ROWS)]}},
        {"dataframe_records": [dict(zip(NAMES, row)) for row in _with_nulls(ROWS)]},
    ]
    for body in bodies:
        answer = client.post(f"/models/{name}/production/predict", json={**body, "return_proba": True})
        assert answer.status_code == 200, answer.get_json()
        assert [p[1] for p in answer.get_json()["probabilities"]] == expected, list(body)

    csv = client.post(f"/models/{name}/production/predict?proba=true", data=_csv(ROWS),
                      content_type="text/csv")
    v2 = client.post(f"/v2/models/{name}/infer", content_type="application/json", data=json.dumps(
        {"inputs": [{"name": "x", "shape": list(ROWS.shape), "datatype": "FP64", "data": ROWS.tolist()}],
         "outputs": [{"name": "predict_proba"}]}))  # Python writes NaN tokens, as KServe's clients do

    assert csv.status_code == 200, csv.get_json()
    assert [p[1] for p in csv.get_json()["probabilities"]] == expected
    assert v2.status_code == 200, v2.get_json()
    assert v2.get_json()["outputs"][0]["data"][1::2] == expected


@pytest.mark.parametrize("name", ["xgboost", "lightgbm", "histogram"])
def test_infinities_stay_refused_where_missing_values_are_taken(client, models, name):
    body = '{"instances": [[1.0, 1e400, null]]}'
    response = client.post(f"/models/{name}/production/predict", data=body, content_type="application/json")
    assert_problem(response, 422, "row 0, feature b", "finite")


@pytest.mark.parametrize("estimator", [
    RandomForestRegressor(n_estimators=3, random_state=0),
    GradientBoostingRegressor(n_estimators=3, random_state=0),  # scikit-learn's exact booster takes no NaN
    make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=3)),  # a step before it
], ids=["forest", "gradient-boosting", "histogram-behind-a-scaler"])
def test_a_version_whose_model_takes_no_missing_values_refuses_null_with_422(client, ci, estimator):
    clean = np.nan_to_num(X)
    upload_ok(client, ci, "plain", estimator.fit(clean, Y), metadata={"feature_names": NAMES})
    _served(client, ci, "plain")
    assert "missing_values" not in client.get("/models/plain/versions/1").get_json()["signature"]

    refused = client.post("/models/plain/production/predict", json={"instances": [[1.0, None, 2.0]]})
    empty = client.post("/models/plain/production/predict", data="a,b,c\n1.0,,2.0\n", content_type="text/csv")

    assert_problem(refused, 422, "row 0, feature b", "null")
    assert_problem(empty, 422, "feature b")


def test_the_prediction_log_keeps_a_missing_value_as_null(build_app, ci, admin):
    app = build_app(PREDICTION_LOG_SAMPLE=1.0)
    client = app.test_client()
    histogram = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, Y)
    upload_ok(client, ci, "logged", histogram, metadata={"feature_names": NAMES})
    _served(client, ci, "logged")
    assert client.post("/models/logged/production/predict", json={"instances": [[0.5, None, -1.0]]},
                       headers={"X-Request-ID": "with-a-gap"}).status_code == 200
    assert app.extensions["model_registry"].prediction_log.flush()

    items = client.get("/models/logged/predictions", headers=admin).get_json()["items"]

    assert [(item["request_id"], item["inputs"]) for item in items] == [("with-a-gap", [[0.5, None, -1.0]])]
    assert json.dumps(items)  # no NaN token in what the API answers
