"""Versions through HTTP: upload, read back, list, download and archive (API.md, Registry)."""
import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from api.settings import settings_of
from tests.helpers import artifact_bytes, assert_problem, classification_data, regression_data, upload

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
VERSION_FIELDS = {
    "model", "version", "status", "kind", "task", "estimator", "signature", "metrics", "params", "tags",
    "description", "lineage", "sha256", "size_bytes", "aliases", "created_at", "created_by", "steps",
}

KINDS = [
    pytest.param(LinearRegression(), "regression", "linear", "sklearn.linear_model.LinearRegression", id="linear"),
    pytest.param(LogisticRegression(), "classification", "logistic", "sklearn.linear_model.LogisticRegression", id="logistic"),
    pytest.param(DecisionTreeRegressor(max_depth=3), "regression", "tree", "sklearn.tree.DecisionTreeRegressor", id="tree-regressor"),
    pytest.param(DecisionTreeClassifier(max_depth=3), "classification", "tree", "sklearn.tree.DecisionTreeClassifier", id="tree-classifier"),
    pytest.param(RandomForestRegressor(n_estimators=3, max_depth=3, random_state=0), "regression", "forest",
                 "sklearn.ensemble.RandomForestRegressor", id="forest-regressor"),
    pytest.param(RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0), "classification", "forest",
                 "sklearn.ensemble.RandomForestClassifier", id="forest-classifier"),
]


def ridge(alpha: float = 1.0) -> Ridge:
    """A small fitted regressor; a different ``alpha`` gives different bytes (a new version)."""
    return Ridge(alpha=alpha).fit(*regression_data())


def post_bytes(client, headers, name, data: bytes, metadata: str | None = None):
    form = {"artifact": (io.BytesIO(data), "model.joblib")}
    if metadata is not None:
        form["metadata"] = metadata
    return client.post(f"/models/{name}/versions", data=form, headers=headers, content_type="multipart/form-data")


def versions_of(client, name, **query) -> list[int]:
    response = client.get(f"/models/{name}/versions", query_string=query)
    assert response.status_code == 200, response.get_json()
    return [v["version"] for v in response.get_json()["items"]]


def stored_file(app, sha256: str) -> Path:
    return Path(settings_of(app).storage.artifact_root) / "sha256" / sha256[:2] / sha256


# ---- upload ---------------------------------------------------------------------------------

@pytest.mark.parametrize("estimator, task, kind, estimator_path", KINDS)
def test_an_upload_of_each_kind_is_201_with_location_and_the_documented_version(client, admin, estimator, task, kind, estimator_path):
    X, y = regression_data() if task == "regression" else classification_data()
    data = artifact_bytes(estimator.fit(X, y))

    response = post_bytes(client, admin, "housing", data)

    assert response.status_code == 201, response.get_json()
    assert response.headers["Location"].endswith("/models/housing/versions/1")
    body = response.get_json()
    assert VERSION_FIELDS <= set(body)
    assert body["model"] == "housing" and body["version"] == 1 and body["status"] == "ready"
    assert (body["kind"], body["task"], body["estimator"], body["steps"]) == (kind, task, estimator_path, None)
    assert body["signature"] == {
        "features": [{"name": f"x{i}", "dtype": "float64"} for i in range(4)],
        "classes": [0, 1] if task == "classification" else None,
    }
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["size_bytes"] == len(data)
    assert (body["metrics"], body["params"], body["tags"], body["lineage"], body["description"]) == ({}, {}, {}, {}, "")
    assert body["aliases"] == []
    assert TIMESTAMP.match(body["created_at"])
    assert client.get(response.headers["Location"]).get_json() == body


@pytest.fixture(scope="module")
def pipeline_model():
    """A classifier behind imputation + scaling of two numbers and one-hot encoding of a string column."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "size": rng.normal(size=40),
        "age": rng.normal(size=40),
        "colour": rng.choice(["red", "green", "blue"], size=40),
    })
    frame.loc[[3, 9], "size"] = np.nan
    y = (frame["age"] > 0).map({True: "old", False: "young"})
    prepare = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["size", "age"]),
        ("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
    ])
    return Pipeline([("prepare", prepare), ("model", LogisticRegression())]).fit(frame, y)


def test_a_pipeline_upload_lists_its_steps_and_the_dtype_of_each_column(client, admin, pipeline_model):
    response = upload(client, admin, "churn", pipeline_model, {"input_example": [[1.0, 2.0, "red"], [-0.5, 0.5, "blue"]]})

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["kind"], body["task"]) == ("logistic", "classification")
    assert body["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert body["steps"] == ["sklearn.compose.ColumnTransformer", "sklearn.linear_model.LogisticRegression"]
    assert body["signature"] == {
        "features": [
            {"name": "size", "dtype": "float64"},
            {"name": "age", "dtype": "float64"},
            {"name": "colour", "dtype": "object"},
        ],
        "classes": ["old", "young"],
    }
    assert client.get("/models/churn/versions/1").get_json() == body


def test_uploading_the_same_bytes_again_returns_the_existing_version_with_200(client, admin):
    first = upload(client, admin, "housing", ridge(), {"metrics": {"r2": 0.8}})
    again = upload(client, admin, "housing", ridge(), {"metrics": {"r2": 0.1}})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert versions_of(client, "housing", include_archived="true") == [1]
    assert client.get("/models/housing").get_json()["version_count"] == 1


def test_the_same_bytes_uploaded_to_another_model_are_a_new_version_there(client, admin):
    upload(client, admin, "housing", ridge())

    response = upload(client, admin, "pricing", ridge())

    assert response.status_code == 201
    assert (response.get_json()["model"], response.get_json()["version"]) == ("pricing", 1)


def test_uploading_the_bytes_of_an_archived_version_is_409_and_changes_nothing(client, admin):
    upload(client, admin, "housing", ridge(1))
    upload(client, admin, "housing", ridge(2))
    assert client.delete("/models/housing/versions/1", headers=admin).status_code == 200

    response = upload(client, admin, "housing", ridge(1))

    assert_problem(response, 409, "archived")
    assert versions_of(client, "housing", include_archived="true") == [2, 1]
    assert client.get("/models/housing/versions/1").get_json()["status"] == "archived"


def test_upload_metadata_is_stored_and_returned(client, admin):
    metadata = {
        "description": "nightly retrain",
        "metrics": {"r2": 0.81, "rmse": 1.5, "n": 3},
        "params": {"alpha": 1.0, "solver": "auto", "nested": {"a": [1, 2]}},
        "tags": {"team": "pricing"},
        "lineage": {"dataset_sha256": "ab" * 32, "git_commit": "deadbeef", "job_url": "https://ci/1"},
        "feature_names": ["rooms", "area", "age", "distance"],
        "input_example": [[1.0, 2.0, 3.0, 4.0], [0, 0, 0, 0]],
    }

    response = upload(client, admin, "housing", ridge(), metadata)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    for field in ("description", "metrics", "params", "tags", "lineage", "input_example"):
        assert body[field] == metadata[field], field
    assert [f["name"] for f in body["signature"]["features"]] == metadata["feature_names"]
    assert client.get("/models/housing/versions/1").get_json() == body


def test_created_by_is_the_name_of_the_uploading_token(client, admin, ci):
    by_ci = upload(client, ci, "housing", ridge(1))
    by_admin = upload(client, admin, "housing", ridge(2))

    assert by_ci.get_json()["created_by"] == "ci-test"
    assert by_admin.get_json()["created_by"] == "admin"
    assert {v["version"]: v["created_by"] for v in client.get("/models/housing/versions").get_json()["items"]} == {
        1: "ci-test",
        2: "admin",
    }


# ---- list -----------------------------------------------------------------------------------

@pytest.fixture
def scored(client, admin):
    """Versions 1-4 of ``housing`` with r2 0.3, 0.9, (none), 0.5."""
    for alpha, metrics in [(1, {"r2": 0.3}), (2, {"r2": 0.9}), (3, {"rmse": 2.0}), (4, {"r2": 0.5})]:
        assert upload(client, admin, "housing", ridge(alpha), {"metrics": metrics}).status_code == 201
    return "housing"


@pytest.mark.parametrize("query, expected", [
    ({}, [4, 3, 2, 1]),
    ({"sort": "-version"}, [4, 3, 2, 1]),
    ({"sort": "version"}, [1, 2, 3, 4]),
    ({"sort": "-created_at"}, [4, 3, 2, 1]),
    ({"sort": "-metrics.r2"}, [2, 4, 1, 3]),
    ({"sort": "metrics.r2"}, [1, 4, 2, 3]),
    ({"sort": "-metrics.rmse"}, [3, 4, 2, 1]),
])
def test_versions_are_newest_first_or_sorted_with_those_lacking_the_metric_last(client, scored, query, expected):
    assert versions_of(client, scored, **query) == expected


@pytest.mark.parametrize("sort", ["r2", "metrics.", "metrics", "name", "-size_bytes", "--version"])
def test_an_unknown_sort_key_is_422(client, scored, sort):
    body = assert_problem(client.get(f"/models/{scored}/versions", query_string={"sort": sort}), 422, "sort")

    assert "metrics.<name>" in body["detail"]


def test_versions_are_paginated_with_a_total(client, scored):
    first = client.get(f"/models/{scored}/versions?per_page=3").get_json()
    second = client.get(f"/models/{scored}/versions?per_page=3&page=2").get_json()

    assert [v["version"] for v in first["items"]] == [4, 3, 2]
    assert (first["total"], first["page"], first["per_page"]) == (4, 1, 3)
    assert [v["version"] for v in second["items"]] == [1]
    assert (second["total"], second["page"]) == (4, 2)


@pytest.mark.parametrize("query", ["per_page=0", "per_page=501", "page=0", "page=-1", "per_page=x", "include_archived=maybe"])
def test_bad_list_parameters_are_422(client, scored, query):
    assert_problem(client.get(f"/models/{scored}/versions?{query}"), 422)


def test_versions_of_an_unknown_model_are_404(client):
    assert_problem(client.get("/models/nope/versions"), 404, "nope")


# ---- one version ----------------------------------------------------------------------------

def test_a_version_is_found_by_number_by_alias_and_as_latest(client, admin):
    upload(client, admin, "housing", ridge(1))
    upload(client, admin, "housing", ridge(2))
    upload(client, admin, "housing", ridge(3))
    assert client.post("/models/housing/versions/2/promote", json={"alias": "staging"}, headers=admin).status_code == 200

    by_number = client.get("/models/housing/versions/2").get_json()
    by_alias = client.get("/models/housing/versions/staging").get_json()
    latest = client.get("/models/housing/versions/latest").get_json()

    assert by_number == by_alias
    assert (by_alias["version"], by_alias["aliases"]) == (2, ["staging"])
    assert (latest["version"], latest["aliases"]) == (3, [])


@pytest.mark.parametrize("path, fragment", [
    ("/models/nope/versions/1", "nope"),
    ("/models/housing/versions/9", "no version 9"),
    ("/models/housing/versions/0", "start at 1"),
    ("/models/housing/versions/production", "no alias 'production'"),
    ("/models/housing/versions/Not%20An%20Alias", "neither a version number nor a valid alias"),
    ("/models/nope/versions/latest", "nope"),
])
def test_unknown_models_versions_and_aliases_are_404_problems(client, admin, path, fragment):
    upload(client, admin, "housing", ridge())

    assert_problem(client.get(path), 404, fragment)


def test_latest_of_a_model_whose_versions_are_all_archived_is_404(client, admin):
    upload(client, admin, "housing", ridge())
    client.delete("/models/housing/versions/1", headers=admin)

    assert_problem(client.get("/models/housing/versions/latest"), 404, "latest")


# ---- download -------------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["ci", "admin"])
@pytest.mark.parametrize("ref", ["1", "latest", "production"])
def test_the_artifact_download_is_the_uploaded_bytes_with_the_sha256_as_etag(client, admin, ci, who, ref):
    data = artifact_bytes(ridge())
    post_bytes(client, admin, "housing", data)
    client.post("/models/housing/versions/1/promote", headers=admin)

    response = client.get(f"/models/housing/versions/{ref}/artifact", headers={"ci": ci, "admin": admin}[who])

    assert response.status_code == 200
    assert response.data == data
    assert response.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert response.headers["X-Model-Version"] == "1"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}], ids=["anonymous", "bad-token"])
def test_the_artifact_download_needs_a_token(client, admin, headers):
    upload(client, admin, "housing", ridge())

    response = client.get("/models/housing/versions/1/artifact", headers=headers)

    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("damage", ["overwritten", "truncated", "deleted"])
def test_a_damaged_stored_artifact_is_never_served_and_is_a_clear_500(app, client, admin, damage):
    data = artifact_bytes(ridge())
    sha = post_bytes(client, admin, "housing", data).get_json()["sha256"]
    path = stored_file(app, sha)
    {"overwritten": lambda: path.write_bytes(b"\0" * len(data)),
     "truncated": lambda: path.write_bytes(data[:-10]),
     "deleted": path.unlink}[damage]()

    response = client.get("/models/housing/versions/1/artifact", headers=admin)

    body = assert_problem(response, 500, sha)
    assert body["title"] == "Artifact corrupted"
    assert "re-upload" in body["detail"]
    assert str(settings_of(app).storage.artifact_root) not in response.get_data(as_text=True)
    assert client.get("/models/housing/versions/1").get_json()["status"] == "ready"


def test_a_damaged_artifact_is_not_used_for_predictions_either(app, client, admin):
    data = artifact_bytes(ridge())
    sha = post_bytes(client, admin, "housing", data).get_json()["sha256"]
    stored_file(app, sha).write_bytes(data[:-1])

    response = client.post("/models/housing/1/predict", json={"instances": [[0.0, 0.0, 0.0, 0.0]]})

    assert assert_problem(response, 500, sha)["title"] == "Artifact corrupted"


def test_uploading_the_original_bytes_again_repairs_a_damaged_artifact(app, client, admin):
    data = artifact_bytes(ridge())
    sha = post_bytes(client, admin, "housing", data).get_json()["sha256"]
    stored_file(app, sha).write_bytes(b"garbage")

    again = post_bytes(client, admin, "housing", data)

    assert again.status_code == 200 and again.get_json()["version"] == 1
    assert client.get("/models/housing/versions/1/artifact", headers=admin).data == data


# ---- archive --------------------------------------------------------------------------------

def test_archiving_is_200_with_the_archived_version_and_again_is_a_no_op(client, admin):
    upload(client, admin, "housing", ridge(1))
    upload(client, admin, "housing", ridge(2))

    first = client.delete("/models/housing/versions/1", headers=admin)
    again = client.delete("/models/housing/versions/1", headers=admin)

    assert first.status_code == 200 and again.status_code == 200
    assert (first.get_json()["version"], first.get_json()["status"]) == (1, "archived")
    assert again.get_json() == first.get_json()
    assert client.get("/models/housing/versions/1").get_json()["status"] == "archived"


def test_archiving_a_version_an_alias_points_at_is_409(client, admin):
    upload(client, admin, "housing", ridge())
    client.post("/models/housing/versions/1/promote", json={"alias": "production"}, headers=admin)

    assert_problem(client.delete("/models/housing/versions/1", headers=admin), 409, "production")
    assert client.get("/models/housing/versions/1").get_json()["status"] == "ready"


def test_archived_versions_are_hidden_from_lists_unless_asked_for(client, admin):
    for alpha in (1, 2, 3):
        upload(client, admin, "housing", ridge(alpha))
    client.delete("/models/housing/versions/2", headers=admin)

    assert versions_of(client, "housing") == [3, 1]
    assert versions_of(client, "housing", include_archived="true") == [3, 2, 1]
    assert client.get("/models/housing/versions").get_json()["total"] == 2


def test_version_numbers_are_never_reused_and_latest_skips_archived(client, admin):
    upload(client, admin, "housing", ridge(1))
    upload(client, admin, "housing", ridge(2))
    client.delete("/models/housing/versions/2", headers=admin)

    assert client.get("/models/housing/versions/latest").get_json()["version"] == 1
    assert client.get("/models").get_json()["items"][0]["latest_version"] == 1

    response = upload(client, admin, "housing", ridge(3))

    assert response.status_code == 201 and response.get_json()["version"] == 3
    assert client.get("/models/housing/versions/latest").get_json()["version"] == 3


@pytest.mark.parametrize("who, status", [("ci", 403), ("anonymous", 401)])
def test_only_admins_archive(client, admin, ci, who, status):
    upload(client, admin, "housing", ridge())

    assert_problem(client.delete("/models/housing/versions/1", headers={"ci": ci, "anonymous": {}}[who]), status)
    assert client.get("/models/housing/versions/1").get_json()["status"] == "ready"


@pytest.mark.parametrize("ref, status", [("production", 422), ("latest", 422), ("9", 404)])
def test_archiving_needs_an_existing_version_number(client, admin, ref, status):
    upload(client, admin, "housing", ridge())

    assert_problem(client.delete(f"/models/housing/versions/{ref}", headers=admin), status)
    assert versions_of(client, "housing") == [1]
