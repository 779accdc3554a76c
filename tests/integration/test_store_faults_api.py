"""Storage faults through the API: a full store is 507, one that cannot be written 503; nothing is left.

The end-to-end tests (tests/e2e/test_store_faults.py) fill and remount a real tmpfs; here the
failing system call is replaced, to reach every errno quickly.
"""
import errno
import os

import pytest

from api.settings import settings_of
from tests.helpers import PROBE_ROW, assert_problem, scaled_sum, upload, upload_ok


def failing(monkeypatch, call: str, code: int) -> None:
    """Make ``os.<call>`` fail with ``code``, as the kernel would."""
    def fail(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, call, fail)


def leftovers(app) -> list[str]:
    root = app.extensions["model_registry"].store.root
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_an_upload_to_a_full_store_is_507_and_stores_nothing(app, client, ci, monkeypatch, code):
    failing(monkeypatch, "fsync", code)

    response = upload(client, ci, "m", scaled_sum(1))

    assert_problem(response, 507, "artifact store is full", "free space", "artifacts gc")
    monkeypatch.undo()
    assert leftovers(app) == []
    assert_problem(client.get("/models/m"), 404)  # not even the model row


@pytest.mark.parametrize("call, code", [
    ("replace", errno.EROFS), ("replace", errno.EACCES), ("fsync", errno.EIO), ("mkdir", errno.EROFS),
])
def test_an_upload_to_a_store_that_cannot_be_written_is_503_with_retry_after(app, client, ci, monkeypatch, call, code):
    failing(monkeypatch, call, code)

    response = upload(client, ci, "m", scaled_sum(1))

    body = assert_problem(response, 503, "cannot be written", os.strerror(code), "ARTIFACT_ROOT")
    assert int(response.headers["Retry-After"]) > 0
    assert str(settings_of(app).storage.artifact_root) not in body["detail"]
    monkeypatch.undo()
    assert leftovers(app) == []
    assert_problem(client.get("/models/m"), 404)


def test_loaded_models_keep_predicting_while_uploads_fail(client, ci, monkeypatch):
    upload_ok(client, ci, "m", scaled_sum(1))
    assert client.post("/models/m/1/predict", json={"instances": [PROBE_ROW]}).status_code == 200
    failing(monkeypatch, "fsync", errno.ENOSPC)

    assert upload(client, ci, "m", scaled_sum(2)).status_code == 507
    response = client.post("/models/m/1/predict", json={"instances": [PROBE_ROW]})

    assert response.status_code == 200
    assert response.get_json()["predictions"] == [pytest.approx(3.0)]


def test_re_uploading_stored_bytes_needs_no_room(client, ci, monkeypatch):
    first = upload_ok(client, ci, "m", scaled_sum(1))
    failing(monkeypatch, "fsync", errno.ENOSPC)

    response = upload(client, ci, "m", scaled_sum(1))

    assert response.status_code == 200
    assert response.get_json()["version"] == first


def test_readyz_warns_but_stays_ready_when_the_store_is_nearly_full(build_app):
    app = build_app(MIN_FREE_STORE_MB=10**12)  # more than any disk: always "nearly full"

    response = app.test_client().get("/readyz")

    assert response.status_code == 200
    (warning,) = response.get_json()["warnings"]
    assert "MIN_FREE_STORE_MB" in warning and "MB free" in warning and "507" in warning


def test_readyz_has_no_warning_with_room_to_spare(build_app):
    app = build_app(MIN_FREE_STORE_MB=0)

    assert app.test_client().get("/readyz").get_json()["warnings"] == []
