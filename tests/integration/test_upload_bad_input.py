"""Refused uploads: each is a 4xx problem+json whose detail says what to change, and nothing is stored.

"Nothing stored" means no model, no version row, and no file (nor temp file) in the artifact root.
"""
import io
import json
import os
import pickle
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.svm import SVC

from api.settings import settings_of
from registry.db import db
from tests.helpers import artifact_bytes, classification_data, make_app, PROBLEM_JSON, regression_data, upload



class RunsACommand:
    """An object whose unpickling runs a shell command: what a malicious upload looks like."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def fitted(alpha: float = 1.0) -> Ridge:
    return Ridge(alpha=alpha).fit(*regression_data())


def joblib_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def post_artifact(client, headers, name="housing", data=None, filename="model.joblib", metadata=None, **kw):
    form = {"artifact": (io.BytesIO(artifact_bytes(fitted()) if data is None else data), filename)}
    if metadata is not None:
        form["metadata"] = metadata
    return client.post(f"/models/{name}/versions", data=form, headers=headers, content_type="multipart/form-data", **kw)


def stored_files(app) -> list[Path]:
    root = Path(settings_of(app).storage.artifact_root)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def assert_refused(response, status: int, fragment: str):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["type"]
    assert fragment in body["detail"], body["detail"]
    return body


def assert_nothing_stored(app, client, name="housing"):
    assert client.get(f"/models/{name}").status_code == 404
    assert client.get("/models").get_json()["total"] == 0
    assert stored_files(app) == []


# ---- content --------------------------------------------------------------------------------

@pytest.mark.parametrize("dump", [pickle.dumps, joblib_bytes], ids=["pickle", "joblib"])
@pytest.mark.parametrize("wrap", ["bare", "list-with-model"])
def test_a_pickle_that_runs_a_command_is_422_and_the_command_never_runs(app, client, admin, tmp_path, dump, wrap):
    marker = tmp_path / "pwned"
    payload = RunsACommand(f"touch {marker}")
    data = dump(payload if wrap == "bare" else [fitted(), payload])

    response = post_artifact(client, admin, data=data)

    assert_refused(response, 422, "system")
    assert not marker.exists()
    assert_nothing_stored(app, client)


def _truncated() -> bytes:
    data = artifact_bytes(fitted())
    return data[: len(data) // 2]


@pytest.mark.parametrize("data, fragment", [
    pytest.param(b"", "artifact is empty", id="empty"),
    pytest.param(b"this is not a model\n" * 20, "not a joblib or pickle file", id="garbage"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(64), "not a joblib or pickle file", id="png"),
    pytest.param(_truncated(), "ends too early", id="truncated"),
    pytest.param(pickle.dumps([fitted()]), "holds a list, not a scikit-learn estimator", id="model-in-a-list"),
    pytest.param(pickle.dumps({"model": fitted()}), "holds a dict", id="model-in-a-dict"),
    pytest.param(pickle.dumps(42), "holds a int", id="a-number"),
    pytest.param(artifact_bytes(SVC().fit(*classification_data())), "SVC", id="unsupported-svc"),
    pytest.param(artifact_bytes(LinearRegression()), "not fitted", id="unfitted"),
])
def test_content_that_is_not_a_supported_fitted_model_is_422_and_nothing_is_stored(app, client, admin, data, fragment):
    response = post_artifact(client, admin, data=data)

    assert_refused(response, 422, fragment)
    assert_nothing_stored(app, client)


def test_a_refused_upload_to_an_existing_model_adds_no_version(app, client, admin):
    assert post_artifact(client, admin).status_code == 201
    files_before = stored_files(app)

    response = post_artifact(client, admin, data=b"garbage")

    assert_refused(response, 422, "not a joblib or pickle file")
    assert [v["version"] for v in client.get("/models/housing/versions?include_archived=true").get_json()["items"]] == [1]
    assert client.get("/models/housing").get_json()["version_count"] == 1
    assert stored_files(app) == files_before


# ---- form fields ----------------------------------------------------------------------------

def test_an_upload_without_the_artifact_field_is_422(app, client, admin):
    response = client.post(
        "/models/housing/versions", data={"metadata": "{}"}, headers=admin, content_type="multipart/form-data"
    )

    body = assert_refused(response, 422, "artifact")
    assert "artifact" in body["errors"]
    assert_nothing_stored(app, client)


def test_the_artifact_sent_as_a_plain_form_field_is_422(app, client, admin):
    response = client.post(
        "/models/housing/versions", data={"artifact": "not a file"}, headers=admin, content_type="multipart/form-data"
    )

    assert_refused(response, 422, "artifact")
    assert_nothing_stored(app, client)


def test_an_unknown_form_field_is_422_so_a_typo_is_not_silently_ignored(app, client, admin):
    form = {"artifact": (io.BytesIO(artifact_bytes(fitted())), "m.joblib"), "metdata": '{"tags": {}}'}

    response = client.post("/models/housing/versions", data=form, headers=admin, content_type="multipart/form-data")

    assert_refused(response, 422, "metdata")
    assert_nothing_stored(app, client)


def test_a_part_without_a_name_is_422_not_a_500(app, client, admin):
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"artifact\"; filename=\"m.joblib\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + artifact_bytes(fitted()) + (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; filename=\"x\"\r\n\r\nx\r\n--{boundary}--\r\n"
    ).encode()

    response = client.post("/models/housing/versions", data=body, headers=admin,
                           content_type=f"multipart/form-data; boundary={boundary}")

    assert_refused(response, 422, "a part without a name")
    assert_nothing_stored(app, client)


@pytest.mark.parametrize("metadata, fragment", [
    pytest.param("{not json", "metadata is not valid JSON", id="not-json"),
    pytest.param("[1, 2]", "metadata must be a JSON object", id="a-list"),
    pytest.param('"text"', "metadata must be a JSON object", id="a-string"),
    pytest.param("null", "metadata must be a JSON object", id="null"),
    pytest.param('{"metrics": {"r2": "high"}}', "metrics.r2: must be a finite number", id="metric-string"),
    pytest.param('{"metrics": {"r2": true}}', "metrics.r2: must be a finite number", id="metric-bool"),
    pytest.param('{"metrics": {"r2": null}}', "metrics.r2", id="metric-null"),
    pytest.param('{"metrics": {"r2": NaN}}', "NaN", id="metric-nan"),
    pytest.param('{"metrics": {"r2": Infinity}}', "Infinity", id="metric-infinity"),
    pytest.param('{"metrics": {"r2": 1e400}}', "1e400", id="metric-overflowing-float"),
    pytest.param('{"metrics": {"r2": 1%s}}' % ("0" * 400), "metrics.r2: must be a finite number", id="metric-huge-int"),
    pytest.param('{"metrics": [0.8]}', "metrics", id="metrics-a-list"),
    pytest.param('{"params": {"alpha": NaN}}', "NaN", id="param-nan"),
    pytest.param('{"lineage": {"rows": -Infinity}}', "-Infinity", id="lineage-infinity"),
    pytest.param('{"tags": {"team": 1}}', "tags.team", id="tag-number"),
    pytest.param('{"tags": {"team": ["a"]}}', "tags.team", id="tag-list"),
    pytest.param('{"tags": {"team": "a\\u0000b"}}', "NUL", id="tag-nul"),
    pytest.param('{"description": "\\ud800"}', "description", id="description-lone-surrogate"),
    pytest.param('{"description": 5}', "description", id="description-number"),
    pytest.param('{"params": [1]}', "params", id="params-a-list"),
    pytest.param('{"lineage": "git"}', "lineage", id="lineage-a-string"),
    pytest.param('{"owner": "me"}', "owner", id="unknown-key"),
    pytest.param('{"feature_names": ["a", "b"]}', "feature_names has 2 names but the model takes 4", id="feature-count"),
    pytest.param('{"feature_names": ["a", "a", "b", "c"]}', "unique", id="feature-duplicates"),
    pytest.param('{"input_example": [[1, 2]]}', "input_example does not fit", id="example-short-row"),
    pytest.param('{"input_example": [[1, 2, 3, "x"]]}', "input_example does not fit", id="example-string"),
    pytest.param('{"input_example": []}', "input_example", id="example-empty"),
])
def test_invalid_metadata_is_422_naming_the_problem_and_nothing_is_stored(app, client, admin, metadata, fragment):
    response = post_artifact(client, admin, metadata=metadata)

    assert_refused(response, 422, fragment)
    assert_nothing_stored(app, client)


# ---- names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".hidden", "-dash", "a b", "café", "a:b", "x" * 129, "x" * 200])
def test_an_invalid_model_name_is_422_stating_the_rule(app, client, admin, name):
    response = post_artifact(client, admin, name=name)

    assert_refused(response, 422, "invalid model name")
    assert "1-128 ASCII letters, digits" in response.get_json()["detail"]
    assert client.get("/models").get_json()["total"] == 0
    assert stored_files(app) == []


@pytest.mark.parametrize("path", ["a%2Fb", "a/b", "a%2F..%2Fb"])
def test_a_name_with_a_slash_matches_no_route_and_is_404(app, client, admin, path):
    # WSGI decodes %2F before routing, so the service never sees such a name: there is no route.
    response = post_artifact(client, admin, name=path)

    assert_refused(response, 404, "no such route")
    assert client.get("/models").get_json()["total"] == 0
    assert stored_files(app) == []


def test_the_longest_valid_name_is_accepted(client, admin):
    name = "m" * 128

    assert post_artifact(client, admin, name=name).status_code == 201
    assert client.get(f"/models/{name}").status_code == 200


@pytest.mark.parametrize("filename", ["../../etc/passwd", "a/b.joblib", "/abs/model.joblib", "..", "."])
def test_a_path_like_filename_is_422(app, client, admin, filename):
    response = post_artifact(client, admin, filename=filename)

    assert_refused(response, 422, "looks like a path")
    assert_nothing_stored(app, client)


@pytest.mark.parametrize("filename", ["model.joblib", "model..v2.joblib", "..model", "modèle.pkl", "no-extension"])
def test_a_plain_filename_is_accepted_and_never_used_for_storage(app, client, admin, filename):
    response = post_artifact(client, admin, filename=filename)

    assert response.status_code == 201, response.get_json()
    assert [p.name for p in stored_files(app)] == [response.get_json()["sha256"]]


# ---- transport ------------------------------------------------------------------------------

def test_a_body_over_max_upload_mb_is_413_and_nothing_is_stored(build_app, admin):
    app = build_app(MAX_UPLOAD_MB=1)
    client = app.test_client()

    response = post_artifact(client, admin, data=b"\0" * (1024 * 1024 + 1))

    assert_refused(response, 413, "size limit")
    assert_nothing_stored(app, client)


def test_a_body_under_max_upload_mb_is_accepted(build_app, admin):
    client = build_app(MAX_UPLOAD_MB=1).test_client()

    assert post_artifact(client, admin).status_code == 201


@pytest.mark.parametrize("kwargs, mimetype", [
    ({"json": {"artifact": "base64…"}}, "application/json"),
    ({"data": b"raw bytes", "content_type": "application/octet-stream"}, "application/octet-stream"),
    ({"data": "artifact=x", "content_type": "application/x-www-form-urlencoded"}, "application/x-www-form-urlencoded"),
])
def test_an_upload_that_is_not_multipart_is_415(app, client, admin, kwargs, mimetype):
    response = client.post("/models/housing/versions", headers=admin, **kwargs)

    body = assert_refused(response, 415, "multipart/form-data")
    assert mimetype in body["detail"]
    assert_nothing_stored(app, client)


@pytest.mark.parametrize("authorization, fragment", [
    (None, "Authorization: Bearer"),
    ("Bearer", "Authorization: Bearer"),
    ("Basic dXNlcjpwYXNz", "Authorization: Bearer"),
    ("Bearer not-a-token", "not valid"),
    ("Bearer test-admin-token-but-longer", "not valid"),
])
def test_an_upload_without_a_valid_token_is_401_with_a_bearer_challenge(app, client, authorization, fragment):
    headers = {"Authorization": authorization} if authorization else {}

    response = post_artifact(client, headers)

    assert_refused(response, 401, fragment)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_stored(app, client)
