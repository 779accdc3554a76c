"""What the V2 API tests share: a module's app with three models, tensors, and the protocol's error check."""
import json

import numpy as np
import pandas as pd
import pytest
from flask_migrate import upgrade
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.databases import fresh_database
from tests.helpers import ADMIN_TOKEN, MIGRATIONS, classification_data, close_app, make_app, regression_data, upload_ok

FEATURES = ["x0", "x1", "x2", "x3"]
ROWS = [[0.5, -1.0, 2.0, 1.5], [1.0, 0.0, -0.5, 3.0], [-2.0, 1.0, 0.25, 0.0]]
INTEGER_ROWS = [[1, -2, 3, 0], [0, 4, -1, 2]]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def tensor(name, rows, datatype="FP64", shape=None):
    values = np.asarray(rows)
    return {"name": name, "shape": list(shape or values.shape), "datatype": datatype, "data": values.tolist()}


def by_feature(rows, names=FEATURES, datatype="FP64", column_shape=lambda n: [n]):
    columns = list(zip(*rows))
    return [{"name": name, "shape": column_shape(len(rows)), "datatype": datatype, "data": list(column)} for name, column in zip(names, columns)]


def infer(client, path, inputs, **extra):
    return client.post(f"/v2/models/{path}/infer", json={"inputs": inputs, **extra})


def assert_error(response, status, *fragments):
    """The protocol's error shape: ``{"error": ...}`` (plus the problem+json members)."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == body["detail"] and body["status"] == status
    for fragment in fragments:
        assert fragment in body["error"], body
    return body


def output(response, name="predict"):
    assert response.status_code == 200, response.get_data(as_text=True)
    return next(o for o in response.get_json()["outputs"] if o["name"] == name)


def promote(client, name, version, alias="production"):
    response = client.post(f"/models/{name}/versions/{version}/promote", json={"alias": alias}, headers=ADMIN)
    assert response.status_code == 200, response.get_json()


def mixed_frame(n_rows=40):
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "size": rng.normal(size=n_rows),
        "colour": pd.Series(rng.choice(["red", "green", "blue"], size=n_rows), dtype=object),
    })


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One app for the module on a database of its own: most tests here only read and infer."""
    root = tmp_path_factory.mktemp("v2")
    with fresh_database(root) as url:
        app = make_app(url, root / "artifacts")
        with app.app_context():
            upgrade(directory=MIGRATIONS)
        yield app.test_client()
        close_app(app)


@pytest.fixture(scope="module")
def models(client):
    """``reg`` (v1, v2; production on 1, staging on 2), ``clf`` (classes 0/1) and ``mixed`` (a text column)."""
    X, y = regression_data(n_features=4)
    regressors = [LinearRegression().fit(X, y), LinearRegression().fit(X, 2 * y)]
    for model in regressors:
        upload_ok(client, ADMIN, "reg", model)
    promote(client, "reg", 1)
    promote(client, "reg", 2, "staging")
    X, y = classification_data(n_features=4)
    classifier = LogisticRegression().fit(X, y)
    upload_ok(client, ADMIN, "clf", classifier)
    promote(client, "clf", 1)
    frame = mixed_frame()
    encode = ColumnTransformer([("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"])], remainder="passthrough")
    mixed = Pipeline([("prepare", encode), ("model", LogisticRegression())])
    mixed.fit(frame, np.where(frame["size"] > 0, "big", "small"))
    upload_ok(client, ADMIN, "mixed", mixed)
    promote(client, "mixed", 1)
    return {"reg": regressors, "clf": classifier, "mixed": mixed}


def binary_body(values: np.ndarray, size_delta=0, header_delta=0, datatype="FP64"):
    """A binary request for one ``input-0`` tensor; the deltas make its sizes lie."""
    header = json.dumps({"inputs": [{"name": "input-0", "shape": list(values.shape), "datatype": datatype,
                                     "parameters": {"binary_data_size": values.nbytes + size_delta}}]}).encode()
    return header + values.tobytes(), {"Inference-Header-Content-Length": str(len(header) + header_delta)}


@pytest.fixture
def limited(database_url, tmp_path, admin):
    """An app that takes at most 5 rows per batch and 1 MB per body, with a model ``m`` of 4 features."""
    app = make_app(database_url, tmp_path / "artifacts", MAX_BATCH_ROWS=5, MAX_PREDICT_MB=1)
    client = app.test_client()
    X, y = regression_data(n_features=4)
    upload_ok(client, admin, "m", LinearRegression().fit(X, y))
    yield client
    close_app(app)
