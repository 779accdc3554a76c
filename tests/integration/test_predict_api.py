"""Predictions over HTTP: every way to name a version, every body format, every kind, every bad input."""
import gzip
import io
import json
import zlib

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from tests.helpers import (
    PROBLEM_JSON,
    assert_problem,
    classification_data,
    close_app,
    make_app,
    regression_data,
    scaled_sum,
    upload,
    upload_ok,
)

# kind, task, a small unfitted estimator
ESTIMATORS = {
    "linear": ("linear", "regression", lambda: LinearRegression()),
    "logistic": ("logistic", "classification", lambda: LogisticRegression()),
    "tree-regressor": ("tree", "regression", lambda: DecisionTreeRegressor(max_depth=3, random_state=0)),
    "tree-classifier": ("tree", "classification", lambda: DecisionTreeClassifier(max_depth=3, random_state=0)),
    "forest-regressor": (
        "forest", "regression", lambda: RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0)
    ),
    "forest-classifier": (
        "forest", "classification", lambda: RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)
    ),
}
FRAME_COLUMNS = ["size", "age", "colour"]


def house_frame(n_rows=60, seed=0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Two numeric columns (``size`` with gaps) and a string column; a numeric and a yes/no target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "size": rng.normal(size=n_rows),
        "age": rng.normal(size=n_rows),
        "colour": rng.choice(["red", "green", "blue"], size=n_rows),
    })
    y = 2 * frame["size"] - frame["age"] + frame["colour"].map({"red": 1.0, "green": 0.0, "blue": -1.0})
    frame.loc[[3, 11], "size"] = np.nan
    return frame, y.to_numpy(), np.where(y > 0, "yes", "no")


def preprocessed(model, handle_unknown="ignore") -> Pipeline:
    """``model`` behind imputation and scaling of the numbers and one-hot encoding of ``colour``."""
    columns = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["size", "age"]),
        ("colour", OneHotEncoder(handle_unknown=handle_unknown), ["colour"]),
    ])
    return Pipeline([("prepare", columns), ("model", model)])


def fitted(kind_id: str, pipeline: bool):
    """A fitted estimator of ``kind_id`` and rows (no gaps) to predict with, as sent in JSON."""
    _, task, new = ESTIMATORS[kind_id]
    if pipeline:
        frame, y_number, y_class = house_frame()
        model = preprocessed(new()).fit(frame, y_class if task == "classification" else y_number)
        rows = frame.dropna().head(6).astype(object).values.tolist()
        rows.append([0.5, -0.25, "purple"])  # a colour never seen in training: ignored by the encoder
        return model, rows, pd.DataFrame(rows, columns=FRAME_COLUMNS)
    X, y = (classification_data if task == "classification" else regression_data)(n_features=4)
    model = new().fit(X, y)
    rows = X[:7].tolist()
    return model, rows, np.array(rows)


def promote_ok(client, headers, name, version, alias="production"):
    response = client.post(f"/models/{name}/versions/{version}/promote", json={"alias": alias}, headers=headers)
    assert response.status_code == 200, response.get_json()


def assert_answer(response, version: int, predictions) -> dict:
    """A 200 from ``version`` whose predictions are exactly ``predictions``."""
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["version"] == version
    assert response.headers["X-Model-Version"] == str(version)
    assert body["predictions"] == list(predictions)
    return body


# -- every kind answers exactly what the estimator itself answers --------------------------------


@pytest.mark.parametrize("pipeline", [False, True], ids=["bare", "pipeline"])
@pytest.mark.parametrize("kind_id", list(ESTIMATORS))
def test_predictions_equal_the_estimators_own_for_every_kind(client, ci, kind_id, pipeline):
    kind, task, _ = ESTIMATORS[kind_id]
    model, rows, local = fitted(kind_id, pipeline)
    response = upload(client, ci, "m", model)
    assert response.status_code == 201, response.get_json()
    assert (response.get_json()["kind"], response.get_json()["task"]) == (kind, task)

    body = assert_answer(client.post("/models/m/1/predict", json={"instances": rows}), 1, model.predict(local).tolist())
    assert "probabilities" not in body

    if task == "classification":
        for asked in (
            client.post("/models/m/1/predict", json={"instances": rows, "return_proba": True}),
            client.post("/models/m/1/predict?proba=true", json={"instances": rows}),
        ):
            body = assert_answer(asked, 1, model.predict(local).tolist())
            assert body["probabilities"] == model.predict_proba(local).tolist()
            assert body["classes"] == model.classes_.tolist()
    else:
        assert_problem(
            client.post("/models/m/1/predict", json={"instances": rows, "return_proba": True}),
            422, "regressor", "return_proba",
        )
        assert_problem(client.post("/models/m/1/predict?proba=true", json={"instances": rows}), 422, "regressor")


def test_a_pipeline_takes_rows_by_name_and_csv_with_strings(client, ci):
    model, rows, local = fitted("forest-classifier", pipeline=True)
    upload_ok(client, ci, "houses", model)
    expected = model.predict(local).tolist()
    by_name = [dict(zip(FRAME_COLUMNS, row)) for row in rows]
    csv_text = "colour,age,size\n" + "".join(f"{c},{a!r},{s!r}\n" for s, a, c in rows)

    assert_answer(client.post("/models/houses/1/predict", json={"dataframe_records": by_name}), 1, expected)
    assert_answer(client.post("/models/houses/1/predict", data=csv_text, content_type="text/csv"), 1, expected)


def test_a_pipeline_refuses_a_number_where_a_category_is_due(client, ci):
    model, _, _ = fitted("linear", pipeline=True)
    upload_ok(client, ci, "houses", model)
    assert_problem(
        client.post("/models/houses/1/predict", json={"instances": [[1.0, 2.0, 3.5]]}),
        422, "row 0, feature colour", "expected a string",
    )


def test_a_numeric_pipeline_that_picks_columns_by_name_answers_rows_in_every_format(client, ci):
    frame, y, _ = house_frame()
    numeric = frame[["size", "age"]].fillna(0.0)
    picks_by_name = ColumnTransformer([("scaled", StandardScaler(), ["age", "size"])])
    model = Pipeline([("prepare", picks_by_name), ("model", LinearRegression())]).fit(numeric, y)
    upload_ok(client, ci, "numeric-named", model)
    rows = numeric.head(3).to_numpy().tolist()
    expected = model.predict(numeric.head(3)).tolist()

    assert_answer(client.post("/models/numeric-named/1/predict", json={"instances": rows}), 1, expected)
    by_name = [{"age": age, "size": size} for size, age in rows]
    assert_answer(client.post("/models/numeric-named/1/predict", json={"instances": by_name}), 1, expected)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_predictions_that_overflow_to_infinity_are_422_not_invalid_json(client, ci):
    X = np.random.default_rng(0).normal(size=(30, 2))
    upload_ok(client, ci, "overflow", LinearRegression().fit(X, 1e10 * X.sum(axis=1)))
    assert_problem(
        client.post("/models/overflow/1/predict", json={"instances": [[1e300, 1e300]]}),
        422, "non-finite predictions",
    )


# -- every body format -------------------------------------------------------------------------


@pytest.fixture
def linear(client, ci):
    """Model ``m`` version 1: a linear regression on x0..x3, and rows in signature order."""
    model, rows, local = fitted("linear", pipeline=False)
    upload_ok(client, ci, "m", model)
    return model, rows, model.predict(local).tolist()


def _reversed_names(row):
    return {f"x{i}": row[i] for i in reversed(range(len(row)))}


@pytest.mark.parametrize(
    "make_request",
    [
        lambda rows: {"json": {"instances": rows}},
        lambda rows: {"json": {"instances": [_reversed_names(row) for row in rows]}},
        lambda rows: {"json": {"dataframe_split": {"columns": ["x0", "x1", "x2", "x3"], "data": rows}}},
        lambda rows: {
            "json": {"dataframe_split": {"columns": ["x3", "x2", "x1", "x0"], "data": [row[::-1] for row in rows]}}
        },
        lambda rows: {"json": {"dataframe_records": [_reversed_names(row) for row in rows]}},
        lambda rows: {
            "data": "x0,x1,x2,x3\n" + "".join(",".join(map(repr, row)) + "\n" for row in rows),
            "content_type": "text/csv",
        },
        lambda rows: {
            "data": "x2,x3,x0,x1\r\n" + "".join(f"{r[2]!r},{r[3]!r},{r[0]!r},{r[1]!r}\r\n" for r in rows),
            "content_type": "text/csv; charset=utf-8",
        },
    ],
    ids=["instances-rows", "instances-objects", "split", "split-reordered", "records", "csv", "csv-reordered"],
)
def test_every_body_format_gives_the_estimators_predictions(client, linear, make_request):
    _, rows, expected = linear
    assert_answer(client.post("/models/m/1/predict", **make_request(rows)), 1, expected)


# -- every way to name the version -------------------------------------------------------------


@pytest.fixture
def three_versions(client, ci):
    """Model ``m``: v1 (1·sum) in production, v2 (2·sum) in staging, v3 (3·sum) the latest."""
    for factor in (1, 2, 3):
        upload_ok(client, ci, "m", scaled_sum(factor))
    promote_ok(client, ci, "m", 1)
    promote_ok(client, ci, "m", 2, alias="staging")
    return {factor: scaled_sum(factor) for factor in (1, 2, 3)}


ROWS = [[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]]


@pytest.mark.parametrize(
    "path, version",
    [
        ("/models/m/1/predict", 1),
        ("/models/m/2/predict", 2),
        ("/models/m/3/predict", 3),
        ("/models/m/production/predict", 1),
        ("/models/m/staging/predict", 2),
        ("/models/m/latest/predict", 3),
        ("/models/m/predict", 1),
    ],
)
def test_each_reference_is_answered_by_the_version_it_names(client, three_versions, path, version):
    expected = three_versions[version].predict(np.array(ROWS)).tolist()
    assert_answer(client.post(path, json={"instances": ROWS}), version, expected)


# -- bad input ---------------------------------------------------------------------------------


@pytest.fixture
def three_features(client, ci):
    """Model ``m`` version 1, a regressor on x0, x1, x2."""
    upload_ok(client, ci, "m", scaled_sum(1))


BAD_JSON_BODIES = {
    "too-few-features": ({"instances": [[1.0, 2.0]]}, "expected 3 features (x0, x1, x2), got 2"),
    "too-many-features": ({"instances": [[1.0, 2.0, 3.0, 4.0]]}, "expected 3 features (x0, x1, x2), got 4"),
    "missing-name": ({"instances": [{"x0": 1.0, "x1": 2.0}]}, "missing: x2"),
    "extra-name": ({"instances": [{"x0": 1, "x1": 2, "x2": 3, "x9": 4}]}, "unexpected: x9"),
    "wrong-name": (
        {"dataframe_split": {"columns": ["x0", "x1", "z"], "data": [[1, 2, 3]]}},
        "missing: x2; unexpected: z; expected: x0, x1, x2",
    ),
    "records-wrong-name": ({"dataframe_records": [{"x0": 1, "x1": 2, "y": 3}]}, "expected: x0, x1, x2"),
    "string-number": ({"instances": [[1.0, "2.5", 3.0]]}, "row 0, feature x1: expected a number, got '2.5'"),
    "word": ({"instances": [[1.0, 2.0, "abc"]]}, "feature x2: expected a number, got 'abc'"),
    "boolean": ({"instances": [[True, 2.0, 3.0]]}, "feature x0: expected a number, got true"),
    "null": ({"instances": [[1.0, None, 3.0]]}, "feature x1: expected a number, got null"),
    "null-by-name": ({"dataframe_records": [{"x0": 1, "x1": 2, "x2": None}]}, "feature x2: expected a number, got null"),
    "ragged": ({"instances": [[1.0, 2.0, 3.0], [1.0, 2.0]]}, "row 1: expected 3 features"),
    "too-deep": ({"instances": [[[1.0], [2.0], [3.0]]]}, "expected a number, got a list"),
    "row-not-a-list": ({"instances": [1.0, 2.0, 3.0]}, "row 0: expected a list of 3 values"),
    "empty": ({"instances": []}, "instances is empty"),
    "empty-records": ({"dataframe_records": []}, "dataframe_records is empty"),
    "not-a-list": ({"instances": {"x0": 1}}, "instances must be a list of rows"),
    "no-rows-key": ({"inputs": [[1, 2, 3]]}, "unexpected key(s) inputs"),
    "two-rows-keys": ({"instances": [[1, 2, 3]], "dataframe_records": [{"x0": 1}]}, "exactly one of"),
    "not-an-object": ([[1, 2, 3]], "body must be a JSON object"),
    "proba-not-boolean": ({"instances": [[1, 2, 3]], "return_proba": "yes"}, "return_proba must be true or false"),
    "split-without-columns": ({"dataframe_split": {"data": [[1, 2, 3]]}}, "dataframe_split must be an object"),
    "huge-integer": ({"instances": [[1.0, 10**400, 3.0]]}, "feature x1: expected a finite number"),
}


@pytest.mark.parametrize("body, detail", BAD_JSON_BODIES.values(), ids=BAD_JSON_BODIES.keys())
def test_bad_json_input_is_422_naming_the_problem(client, three_features, body, detail):
    assert_problem(client.post("/models/m/1/predict", json=body), 422, detail)


def test_wrong_feature_count_lists_the_expected_names_in_errors_too(client, three_features):
    body = assert_problem(
        client.post("/models/m/1/predict", json={"instances": [{"x0": 1.0}]}), 422, "missing: x1, x2"
    )
    assert body["errors"] == {"missing": ["x1", "x2"], "expected": ["x0", "x1", "x2"]}


@pytest.mark.parametrize(
    "raw, detail",
    [
        ('{"instances": [[NaN, 1.0, 2.0]]}', "feature x0: expected a finite number, got NaN"),
        ('{"instances": [[0.0, Infinity, 2.0]]}', "feature x1: expected a finite number, got Infinity"),
        ('{"instances": [[0.0, 1.0, -Infinity]]}', "feature x2: expected a finite number, got -Infinity"),
        ('{"dataframe_records": [{"x0": 0, "x1": 1, "x2": NaN}]}', "feature x2: expected a finite number"),
        ('{"instances": [[1e999, 1.0, 2.0]]}', "feature x0: expected a finite number"),
    ],
    ids=["nan", "infinity", "minus-infinity", "records-nan", "overflowing-literal"],
)
def test_nan_and_infinity_tokens_in_raw_json_are_422(client, three_features, raw, detail):
    response = client.post("/models/m/1/predict", data=raw, content_type="application/json")
    assert_problem(response, 422, detail)


@pytest.mark.parametrize(
    "text, detail",
    [
        ("x0,x1,x2\n1,2,abc\n", "line 2, feature x2: expected a number, got 'abc'"),
        ("x0,x1,x2\n1,,3\n", "feature x1: expected a number, got an empty cell"),
        ("x0,x1,x2\n1,nan,3\n", "expected a finite number"),
        ("x0,x1,x2\n1,inf,3\n", "expected a finite number"),
        ("x0,x1,x2\n", "the CSV has a header but no rows"),
        ("", "the CSV body is empty"),
        ("x0,x1\n1,2\n", "missing: x2"),
        ("x0,x1,x2\n1,2\n", "line 2: expected 3 features (x0, x1, x2), got 2"),
    ],
    ids=["word", "empty-cell", "nan", "inf", "header-only", "empty", "missing-column", "ragged"],
)
def test_bad_csv_input_is_422_naming_the_problem(client, three_features, text, detail):
    assert_problem(client.post("/models/m/1/predict", data=text, content_type="text/csv"), 422, detail)


def test_malformed_json_is_400(client, three_features):
    response = client.post("/models/m/1/predict", data='{"instances": [[1, 2', content_type="application/json")
    assert_problem(response, 400, "not valid JSON")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "1,2,3", "content_type": "text/plain"},
        {"data": b"x0=1", "content_type": "application/x-www-form-urlencoded"},
        {"data": '{"instances": [[1, 2, 3]]}'},
    ],
    ids=["text-plain", "form", "none"],
)
def test_a_wrong_content_type_is_415(client, three_features, kwargs):
    assert_problem(client.post("/models/m/1/predict", **kwargs), 415, "application/json or text/csv")


@pytest.mark.parametrize(
    "path, detail",
    [
        ("/models/nope/1/predict", "model 'nope' does not exist"),
        ("/models/nope/predict", "model 'nope' does not exist"),
        ("/models/m/9/predict", "has no version 9"),
        ("/models/m/0/predict", "versions start at 1"),
        ("/models/m/staging/predict", "has no alias 'staging'"),
        ("/models/m/predict", "has no alias 'production'"),
        ("/models/m/Not-An-Alias!/predict", "neither a version number nor a valid alias name"),
    ],
)
def test_unknown_model_version_or_alias_is_404(client, three_features, path, detail):
    assert_problem(client.post(path, json={"instances": [[1, 2, 3]]}), 404, detail)


def test_an_archived_version_is_410_while_others_still_answer(client, ci, admin, three_features):
    upload_ok(client, ci, "m", scaled_sum(2))
    assert client.delete("/models/m/versions/1", headers=admin).status_code == 200

    assert_problem(client.post("/models/m/1/predict", json={"instances": [[1, 2, 3]]}), 410, "version 1", "archived")
    assert_answer(client.post("/models/m/2/predict", json={"instances": [[1, 2, 3]]}), 2, [pytest.approx(12.0)])


@pytest.fixture
def limited_app(database_url, tmp_path):
    """An app that takes at most 5 rows per batch and 1 MB per predict body."""
    app = make_app(database_url, tmp_path / "artifacts", MAX_BATCH_ROWS=5, MAX_PREDICT_MB=1)
    yield app
    close_app(app)


@pytest.fixture
def limited(limited_app, admin):
    client = limited_app.test_client()
    upload_ok(client, admin, "m", scaled_sum(1))
    return client


def test_a_batch_at_the_row_limit_is_answered(limited):
    response = limited.post("/models/m/1/predict", json={"instances": [[1, 2, 3]] * 5})
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"instances": [[1, 2, 3]] * 6}},
        {"json": {"dataframe_records": [{"x0": 1, "x1": 2, "x2": 3}] * 6}},
        {"json": {"dataframe_split": {"columns": ["x0", "x1", "x2"], "data": [[1, 2, 3]] * 6}}},
        {"data": "x0,x1,x2\n" + "1,2,3\n" * 6, "content_type": "text/csv"},
    ],
    ids=["instances", "records", "split", "csv"],
)
def test_a_batch_over_the_row_limit_is_413(limited, kwargs):
    assert_problem(limited.post("/models/m/1/predict", **kwargs), 413, "6 rows", "limit is 5")


@pytest.mark.parametrize("content_type", ["application/json", "text/csv"])
def test_a_body_over_the_size_limit_is_413(limited, content_type):
    padding = " " * (1024 * 1024)
    data = '{"instances": [[1, 2, 3]]}' + padding if content_type == "application/json" else "x0,x1,x2\n1,2,3\n" + padding
    assert_problem(
        limited.post("/models/m/1/predict", data=data, content_type=content_type), 413, "over the size limit"
    )


@pytest.mark.parametrize("anonymous", [False, True], ids=["admin", "anonymous"])
def test_a_body_of_more_arrays_and_objects_than_its_rows_need_is_413(limited, admin, anonymous):
    # 4 for each row of the largest batch (5 here) and 64 more: 84, counted before anything reads the body
    # or the token; brackets in strings do not count.
    headers = {} if anonymous else admin
    at_limit = {"items": [[]] * 82, "note": "[]{}" * 100}  # with the body and its list: 84
    assert_problem(limited.post("/models/m/feedback", json=at_limit, headers=headers), 401 if anonymous else 422)
    over = {"items": [[]] * 83}
    assert_problem(limited.post("/models/m/feedback", json=over, headers=headers), 413,
                   "85 arrays and objects", "the 84 a body may hold", "MAX_BATCH_ROWS 5", "fewer rows or items")


def test_a_body_over_the_size_limit_sent_without_a_length_is_413(limited):
    # As gunicorn hands over a chunked body: no Content-Length, so the limit must hold while reading.
    stream = io.BytesIO(b'{"instances": [[1, 2, 3]]}' + b" " * (1024 * 1024 + 1))
    response = limited.post(
        "/models/m/1/predict", input_stream=stream, content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_problem(response, 413, "over the size limit")


def test_no_bad_input_makes_a_5xx(client, three_features):
    bodies = [b"", b"null", b"[]", b"{}", b"\xff\xfe", b'"text"', b"12", json.dumps({"instances": [[{}, [], None]]})]
    for body in bodies:
        response = client.post("/models/m/1/predict", data=body, content_type="application/json")
        assert 400 <= response.status_code < 500, (body, response.get_data(as_text=True))
        assert response.mimetype == PROBLEM_JSON
    response = client.post("/models/m/1/predict", data=b"\xff\xfe,\x00\n1,2", content_type="text/csv")
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)


def test_a_proba_query_flag_that_is_not_a_boolean_is_422(client, ci):
    model, rows, _ = fitted("logistic", pipeline=False)
    upload_ok(client, ci, "m", model)
    assert_problem(client.post("/models/m/1/predict?proba=banana", json={"instances": rows}), 422, "proba", "banana")


@pytest.mark.parametrize("encoding, compress", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
])
def test_a_compressed_json_body_is_decoded_on_every_route(client, ci, encoding, compress):
    upload_ok(client, ci, "zipped", scaled_sum(2))
    assert client.post("/models/zipped/versions/1/promote", json={}, headers=ci).status_code == 200
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    ours = client.post("/models/zipped/predict", data=compress(b'{"instances": [[1.0, 1.0, 1.0]]}'), headers=headers)
    tensor = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 1.0, 1.0]}]}
    v2 = client.post("/v2/models/zipped/infer", data=compress(json.dumps(tensor).encode()), headers=headers)
    assert ours.status_code == 200 and ours.get_json()["predictions"] == [pytest.approx(6.0)]
    assert v2.status_code == 200 and v2.get_json()["outputs"][0]["data"] == [pytest.approx(6.0)]


def test_an_unknown_content_encoding_is_415_on_every_route(client, ci):
    headers = {"Content-Type": "application/json", "Content-Encoding": "br"}
    assert_problem(client.post("/models/m/predict", data=b"{}", headers=headers), 415, "gzip, deflate or no encoding")
    v2 = client.post("/v2/models/m/infer", data=b"{}", headers=headers)
    assert v2.status_code == 415 and "gzip, deflate or no encoding" in v2.get_json()["error"]
