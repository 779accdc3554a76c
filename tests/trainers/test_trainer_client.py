"""The Python client against a stub HTTP server: what it sends, what it returns, how it fails and retries.

Its round trips against the real service are in tests/e2e/test_python_client.py.
"""
from __future__ import annotations

import hashlib
import json
import socket
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import numpy as np
import pandas as pd
import pytest
import urllib3
from sklearn.linear_model import LinearRegression

from registry_client import Move, RegistryClient, RegistryError, RegistryUnreachable, TokenRejected, Version, transport

VERSION = {
    "model": "housing", "version": 4, "status": "ready", "kind": "linear", "task": "regression",
    "estimator": "sklearn.linear_model.LinearRegression", "steps": None,
    "signature": {"features": [{"name": "x0", "dtype": "float64"}], "classes": None},
    "metrics": {"r2": 0.8}, "params": {}, "tags": {}, "description": "", "lineage": {}, "input_example": None,
    "sha256": hashlib.sha256(b"GOOD").hexdigest(), "size_bytes": 4, "sklearn_version": "1.9.1",
    "aliases": [], "created_at": "2026-11-20T12:00:00Z", "created_by": "ci", "a_field_from_the_future": 1,
}


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The seconds the client slept between retries (urllib3's Retry does not really sleep)."""
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", slept.append)
    return slept


def test_upload_sends_the_artifact_and_metadata_as_multipart_with_the_bearer_token(stub):
    stub.answer_json(201, VERSION)
    client = RegistryClient(stub.url, "s3cret")
    version = client.upload("housing", b"BYTES", metrics={"r2": 0.8}, filename="m.joblib")
    request = stub.requests[0]
    assert isinstance(version, Version) and version.version == 4
    assert version.signature.names == ["x0"] and version.created_at == datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    assert version.raw["a_field_from_the_future"] == 1
    assert (request["method"], request["path"]) == ("POST", "/models/housing/versions")
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["Content-Type"].startswith("multipart/form-data")
    assert b'name="artifact"; filename="m.joblib"' in request["body"] and b"BYTES" in request["body"]
    assert b'name="metadata"' in request["body"] and b'{"metrics": {"r2": 0.8}}' in request["body"]


def test_an_estimator_is_uploaded_as_its_joblib_file(stub):
    stub.answer_json(201, VERSION)
    RegistryClient(stub.url, "t").upload("housing", LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]))
    body = stub.requests[0]["body"]
    assert b'filename="housing.joblib"' in body and b"sklearn.linear_model._base" in body


def test_the_token_comes_from_registry_token_when_none_is_given(stub, monkeypatch):
    monkeypatch.setenv("REGISTRY_TOKEN", "from-env")
    stub.answer_json(200, {"production": 2})
    assert RegistryClient(stub.url).aliases("housing") == {"production": 2}
    assert stub.requests[0]["headers"]["Authorization"] == "Bearer from-env"


def test_promote_posts_the_alias_the_reason_and_force(stub):
    stub.answer_json(200, {"model": "housing", "alias": "production", "version": 2, "previous_version": 1, "event_id": 9})
    move = RegistryClient(stub.url, "t").promote("housing", 2, reason="retrain: r2 0.8 vs 0.7")
    request = stub.requests[0]
    assert request["path"] == "/models/housing/versions/2/promote"
    assert json.loads(request["body"]) == {"alias": "production", "reason": "retrain: r2 0.8 vs 0.7", "force": False}
    assert move == Move(raw={}, model="housing", alias="production", version=2, previous_version=1, event_id=9)


def test_find_version_is_none_for_an_unset_alias_and_version_raises_with_the_problem(stub):
    problem = {"type": "about:blank", "title": "Not found", "status": 404, "detail": "no alias 'production'"}
    stub.answer_json(404, problem, problem=True)
    stub.answer_json(404, problem, problem=True)
    client = RegistryClient(stub.url, "t")
    assert client.find_version("housing", "production") is None
    with pytest.raises(RegistryError) as caught:
        client.version("housing", "production")
    assert (caught.value.status, caught.value.problem, caught.value.detail) == (404, problem, "no alias 'production'")


def test_a_downloaded_artifact_is_checked_against_its_sha256(stub):
    stub.answer_json(200, VERSION)
    stub.answer(200, b"GOOD")
    stub.answer_json(200, VERSION)
    stub.answer(200, b"EVIL")
    client = RegistryClient(stub.url, "t")
    assert client.download("housing", "production") == b"GOOD"
    assert [r["path"] for r in stub.requests] == ["/models/housing/versions/production", "/models/housing/versions/4/artifact"]
    with pytest.raises(RegistryError, match="does not match its sha256"):
        client.download("housing", "production")


@pytest.mark.parametrize(("status", "message"), [(401, "token rejected by the registry (401)"),
                                                 (403, "token rejected: it lacks the role")])
def test_a_rejected_token_is_named_as_such_and_is_a_registry_error(stub, status, message):
    stub.answer_json(status, {"title": "Unauthorized", "detail": "unknown token"}, problem=True)
    with pytest.raises(TokenRejected) as caught:
        RegistryClient(stub.url, "wrong").promote("housing", 1)
    assert isinstance(caught.value, RegistryError) and caught.value.status == status
    assert str(caught.value).startswith(message) and str(caught.value).endswith(": unknown token")


def test_a_problem_response_is_reported_by_its_detail_and_carries_its_errors(stub):
    detail = "version 2 cannot serve: expected 8 features (x0..x7), got 7"
    problem = {"title": "Unprocessable input", "status": 422, "detail": detail, "errors": {"json": {"alias": ["bad"]}}}
    stub.answer_json(422, problem, problem=True)
    with pytest.raises(RegistryError) as caught:
        RegistryClient(stub.url, "t").promote("housing", 2)
    assert str(caught.value) == f"registry answered 422: {detail}"
    assert caught.value.problem["errors"] == {"json": {"alias": ["bad"]}}


def test_a_response_that_is_not_json_is_reported_by_its_status_line(stub):
    stub.answer(502, b"<html>bad gateway</html>", "text/html")
    with pytest.raises(RegistryError, match="^registry answered 502: 502 Bad Gateway$"):
        RegistryClient(stub.url, "t").find_version("housing", "production")


def test_a_503_is_retried_after_the_seconds_retry_after_names(stub, waits):
    stub.answer_json(503, {"detail": "the artifact store is unreachable"}, problem=True, headers={"Retry-After": "2"})
    stub.answer_json(200, {"production": 1})
    assert RegistryClient(stub.url, "t").aliases("housing") == {"production": 1}
    assert waits == [2.0] and len(stub.requests) == 2


def test_a_retry_after_date_is_honoured_and_a_long_one_capped(stub, waits):
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=10), usegmt=True)
    stub.answer_json(429, {"detail": "slow down"}, problem=True, headers={"Retry-After": soon})
    stub.answer_json(503, {"detail": "not ready"}, problem=True, headers={"Retry-After": "3600"})
    stub.answer_json(200, {})
    RegistryClient(stub.url, "t").aliases("housing")
    assert 8 <= waits[0] <= 10 and waits[1] == transport.MAX_RETRY_WAIT


def test_retries_give_up_with_the_last_problem(stub, waits):
    for _ in range(3):
        stub.answer_json(503, {"detail": "the database is unreachable"}, problem=True)
    with pytest.raises(RegistryError) as caught:
        RegistryClient(stub.url, "t", retries=2).promote("housing", 2)
    assert caught.value.status == 503 and caught.value.detail == "the database is unreachable"
    assert waits == [1.0] and len(stub.requests) == 3  # urllib3's backoff: at once, then 1 s, doubling


def test_a_422_is_never_retried(stub, waits):
    stub.answer_json(422, {"detail": "no"}, problem=True)
    with pytest.raises(RegistryError):
        RegistryClient(stub.url, "t").promote("housing", 2)
    assert waits == [] and len(stub.requests) == 1


def test_versions_are_read_page_after_page(stub):
    stub.answer_json(200, {"items": [{**VERSION, "version": 3}, {**VERSION, "version": 2}], "total": 3, "page": 1, "per_page": 2})
    stub.answer_json(200, {"items": [{**VERSION, "version": 1}], "total": 3, "page": 2, "per_page": 2})
    numbers = [v.version for v in RegistryClient(stub.url, "t").versions("housing", sort="-metrics.r2")]
    assert numbers == [3, 2, 1]
    assert "page=2" in stub.requests[1]["path"] and "sort=-metrics.r2" in stub.requests[1]["path"]


def test_predict_sends_a_dataframe_by_column_and_names_what_answered(stub):
    stub.answer_json(200, {"model": "housing", "version": 3, "predictions": [1.5]},
                     headers={"X-Request-ID": "req-1", "X-Model-Route": "canary"})
    frame = pd.DataFrame({"a": [1.0], "b": [2.0]})
    prediction = RegistryClient(stub.url, "t").predict("housing", frame, request_id="req-1")
    request = stub.requests[0]
    assert request["path"] == "/models/housing/production/predict" and request["headers"]["X-Request-ID"] == "req-1"
    assert json.loads(request["body"]) == {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}
    assert (prediction.version, prediction.predictions, prediction.request_id, prediction.route) == (3, [1.5], "req-1", "canary")


def test_infer_sends_numpy_rows_as_one_fp64_tensor(stub):
    stub.answer_json(200, {"model_name": "housing", "model_version": "3", "id": None,
                           "outputs": [{"name": "predict", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]})
    answer = RegistryClient(stub.url, "t").infer("housing", np.array([[1.0, 2.0], [3.0, 4.0]]), version=3)
    body = json.loads(stub.requests[0]["body"])
    assert stub.requests[0]["path"] == "/v2/models/housing/versions/3/infer"
    assert body["inputs"] == [{"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [[1.0, 2.0], [3.0, 4.0]]}]
    assert answer.outputs == {"predict": [1.0, 2.0]} and answer.model_version == "3"


def test_a_refused_connection_says_so():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listened on, then closed
    with pytest.raises(RegistryUnreachable, match=rf"127\.0\.0\.1:{port}: connection refused") as caught:
        RegistryClient(f"http://127.0.0.1:{port}", "t", timeout=5).find_version("m", "production")
    assert caught.value.status is None


def test_a_read_on_a_kept_alive_connection_the_server_closed_is_sent_again_on_a_new_one(kept_alive_stub):
    kept_alive_stub.answer_json(200, {"production": 1})
    kept_alive_stub.hang_up()  # as gunicorn closing the connection for being idle, just as it is reused
    kept_alive_stub.answer_json(200, {"production": 2})
    client = RegistryClient(kept_alive_stub.url, "t")
    assert client.aliases("housing") == {"production": 1}
    assert client.aliases("housing") == {"production": 2}
    first, hung_up, again = (request["client_port"] for request in kept_alive_stub.requests)
    assert first == hung_up != again


def test_a_post_the_server_hung_up_on_is_not_sent_again_and_says_so(kept_alive_stub):
    kept_alive_stub.answer_json(200, {"production": 1})
    kept_alive_stub.hang_up()
    client = RegistryClient(kept_alive_stub.url, "t")
    client.aliases("housing")
    with pytest.raises(RegistryUnreachable, match="the server closed the connection without answering"):
        client.promote("housing", 2)  # the server may have acted on it: the caller decides
    assert [request["method"] for request in kept_alive_stub.requests] == ["GET", "POST"]


def test_a_read_is_sent_again_once_only(stub):
    stub.hang_up()
    stub.hang_up()
    with pytest.raises(RegistryUnreachable, match="the server closed the connection without answering"):
        RegistryClient(stub.url, "t").aliases("housing")
    assert len(stub.requests) == 2


def test_an_unknown_host_says_its_name_does_not_resolve():
    with pytest.raises(RegistryUnreachable, match="host name does not resolve"):
        RegistryClient("http://registry.invalid", "t", timeout=5).find_version("m", "production")


def test_model_names_are_escaped_in_paths(stub):
    stub.answer_json(404, {"detail": "no"}, problem=True)
    RegistryClient(stub.url, "t").find_version("../tokens", "production")
    assert stub.requests[0]["path"] == "/models/..%2Ftokens/versions/production"
