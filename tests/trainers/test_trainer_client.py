"""The registry client against a stub HTTP server: requests sent, and errors named clearly."""
from __future__ import annotations

import hashlib
import json
import socket

import pytest

from trainers.client import RegistryClient
from trainers.errors import RegistryRequestFailed, RegistryUnreachable, TokenRejected


def test_upload_sends_the_artifact_and_metadata_as_multipart_with_the_bearer_token(stub):
    stub.answer_json(201, {"version": 4})
    client = RegistryClient(stub.url, "s3cret")
    version = client.upload_version("housing", b"BYTES", {"metrics": {"r2": 0.8}}, "m.joblib")
    request = stub.requests[0]
    assert version == {"version": 4}
    assert (request["method"], request["path"]) == ("POST", "/models/housing/versions")
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["Content-Type"].startswith("multipart/form-data")
    assert b'name="artifact"; filename="m.joblib"' in request["body"] and b"BYTES" in request["body"]
    assert b'name="metadata"' in request["body"] and b'{"metrics": {"r2": 0.8}}' in request["body"]


def test_promote_posts_the_alias_and_the_reason(stub):
    stub.answer_json(200, {"version": 2, "previous_version": 1})
    RegistryClient(stub.url, "t").promote("housing", 2, "production", "retrain: r2 0.8 vs 0.7")
    request = stub.requests[0]
    assert request["path"] == "/models/housing/versions/2/promote"
    assert json.loads(request["body"]) == {"alias": "production", "reason": "retrain: r2 0.8 vs 0.7"}


def test_an_unset_alias_or_unknown_model_is_no_version_rather_than_an_error(stub):
    stub.answer_json(404, {"title": "Not found", "detail": "no alias"}, problem=True)
    assert RegistryClient(stub.url, "t").get_version("housing", "production") is None


def test_a_downloaded_artifact_is_checked_against_its_sha256(stub):
    stub.answer(200, b"GOOD")
    stub.answer(200, b"EVIL")
    client = RegistryClient(stub.url, "t")
    version = {"version": 3, "sha256": hashlib.sha256(b"GOOD").hexdigest()}
    assert client.download_artifact("housing", version) == b"GOOD"
    assert stub.requests[0]["path"] == "/models/housing/versions/3/artifact"
    with pytest.raises(RegistryRequestFailed, match="does not match its sha256"):
        client.download_artifact("housing", version)


@pytest.mark.parametrize(("status", "message"), [(401, "token rejected by the registry (401)"),
                                                 (403, "token rejected: it lacks the role")])
def test_a_rejected_token_is_named_as_such(stub, status, message):
    stub.answer_json(status, {"title": "Unauthorized", "detail": "unknown token"}, problem=True)
    with pytest.raises(TokenRejected) as caught:
        RegistryClient(stub.url, "wrong").promote("housing", 1, "production", "r")
    assert str(caught.value).startswith(message) and str(caught.value).endswith(": unknown token")


def test_a_problem_response_is_reported_by_its_detail(stub):
    detail = "version 2 cannot serve: expected 8 features (x0..x7), got 7"
    stub.answer_json(422, {"title": "Unprocessable input", "status": 422, "detail": detail}, problem=True)
    with pytest.raises(RegistryRequestFailed) as caught:
        RegistryClient(stub.url, "t").promote("housing", 2, "production", "r")
    assert str(caught.value) == f"registry answered 422: {detail}"


def test_a_response_that_is_not_json_is_reported_by_its_status_line(stub):
    stub.answer(502, b"<html>bad gateway</html>", "text/html")
    with pytest.raises(RegistryRequestFailed, match="^registry answered 502: 502 Bad Gateway$"):
        RegistryClient(stub.url, "t").get_version("housing", "production")


def test_a_refused_connection_says_so():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listened on, then closed
    with pytest.raises(RegistryUnreachable, match=rf"127\.0\.0\.1:{port}: connection refused"):
        RegistryClient(f"http://127.0.0.1:{port}", "t", timeout=5).get_version("m", "production")


def test_an_unknown_host_says_its_name_does_not_resolve():
    with pytest.raises(RegistryUnreachable, match="host name does not resolve"):
        RegistryClient("http://registry.invalid", "t", timeout=5).get_version("m", "production")


def test_model_names_are_escaped_in_paths(stub):
    stub.answer_json(404, {"detail": "no"}, problem=True)
    RegistryClient(stub.url, "t").get_version("../tokens", "production")
    assert stub.requests[0]["path"] == "/models/..%2Ftokens/versions/production"
