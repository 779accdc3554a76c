"""API tokens through HTTP: created once and shown once, listed without secrets, revoked at once."""
import re

import pytest
from sklearn.linear_model import Ridge
from sqlalchemy import delete

from registry.db import db
from registry.tables import ApiToken
from tests.helpers import assert_problem, regression_data, upload

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def ridge(alpha: float = 1.0) -> Ridge:
    return Ridge(alpha=alpha).fit(*regression_data())


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def create(client, admin, name="ci-nightly", role="ci"):
    return client.post("/tokens", json={"name": name, "role": role}, headers=admin)


@pytest.mark.parametrize("role", ["ci", "admin", "reader"])
def test_creating_a_token_is_201_and_shows_the_token_once(client, admin, role):
    response = create(client, admin, "nightly", role)

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"name", "role", "owner", "scopes", "token", "created_at"} and body["scopes"] is None
    assert body["owner"] == "nightly"  # no owner given: the token is its own person
    assert (body["name"], body["role"]) == ("nightly", role)
    assert len(body["token"]) >= 32
    assert TIMESTAMP.match(body["created_at"])
    listed = client.get("/tokens", headers=admin).get_json()["items"]
    assert [(t["name"], t["role"]) for t in listed] == [("nightly", role)]
    assert body["token"] not in client.get("/tokens", headers=admin).get_data(as_text=True)


def test_the_token_list_is_a_page_by_name_without_secrets(client, admin):
    tokens = [create(client, admin, name).get_json()["token"] for name in ("zz-deploy", "ci-nightly", "ci-adhoc")]

    response = client.get("/tokens", headers=admin)

    assert response.status_code == 200
    body = response.get_json()
    assert (body["total"], body["page"], body["per_page"]) == (3, 1, 50)
    assert [t["name"] for t in body["items"]] == ["ci-adhoc", "ci-nightly", "zz-deploy"]
    assert all(set(t) == {"name", "role", "owner", "scopes", "created_at", "last_used_at"} for t in body["items"])
    text = response.get_data(as_text=True)
    assert not any(token in text for token in tokens)
    assert "hash" not in text
    second = client.get("/tokens?per_page=2&page=2", headers=admin).get_json()
    assert [t["name"] for t in second["items"]] == ["zz-deploy"]


def test_a_used_token_shows_when_it_was_last_used(client, admin):
    token = create(client, admin).get_json()["token"]
    assert client.get("/tokens", headers=admin).get_json()["items"][0]["last_used_at"] is None

    upload(client, bearer(token), "housing", ridge())

    assert TIMESTAMP.match(client.get("/tokens", headers=admin).get_json()["items"][0]["last_used_at"])


def test_a_new_ci_token_can_upload_and_promote(client, admin):
    token = create(client, admin).get_json()["token"]

    uploaded = upload(client, bearer(token), "housing", ridge())
    promoted = client.post("/models/housing/versions/1/promote", headers=bearer(token))

    assert uploaded.status_code == 201 and uploaded.get_json()["created_by"] == "ci-nightly"
    assert promoted.status_code == 200
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


@pytest.mark.parametrize("method, path, body", [
    ("patch", "/models/housing", {"description": "x"}),
    ("post", "/tokens", {"name": "sneaky", "role": "admin"}),
    ("get", "/tokens", None),
    ("delete", "/tokens/ci-nightly", None),
    ("delete", "/models/housing/versions/1", None),
])
def test_a_ci_token_cannot_do_admin_things(client, admin, method, path, body):
    token = create(client, admin).get_json()["token"]
    upload(client, admin, "housing", ridge())

    response = getattr(client, method)(path, json=body, headers=bearer(token))

    problem = assert_problem(response, 403, "'ci-nightly' has role 'ci'; this needs 'admin'")
    assert "'admin' or 'admin'" not in problem["detail"]
    assert [t["name"] for t in client.get("/tokens", headers=admin).get_json()["items"]] == ["ci-nightly"]
    assert client.get("/models/housing").get_json()["description"] == ""
    assert client.get("/models/housing/versions/1").get_json()["status"] == "ready"


def test_a_revoked_token_stops_working_at_once(client, admin):
    token = create(client, admin).get_json()["token"]
    assert upload(client, bearer(token), "housing", ridge(1)).status_code == 201

    revoked = client.delete("/tokens/ci-nightly", headers=admin)

    assert revoked.status_code == 204
    response = upload(client, bearer(token), "housing", ridge(2))
    assert_problem(response, 401, "not valid")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/tokens", headers=admin).get_json()["items"] == []
    assert client.get("/models/housing").get_json()["version_count"] == 1


@pytest.mark.parametrize("name", ["nope", "a%00b", ".."])
def test_revoking_an_unknown_token_is_404(client, admin, name):
    create(client, admin)

    assert_problem(client.delete(f"/tokens/{name}", headers=admin), 404, "no token named")
    assert client.get("/tokens", headers=admin).get_json()["total"] == 1


def test_a_revoked_name_can_be_reused_with_a_new_secret(client, admin):
    old = create(client, admin).get_json()["token"]
    client.delete("/tokens/ci-nightly", headers=admin)

    new = create(client, admin)

    assert new.status_code == 201 and new.get_json()["token"] != old
    assert upload(client, bearer(old), "housing", ridge()).status_code == 401
    assert upload(client, bearer(new.get_json()["token"]), "housing", ridge()).status_code == 201


@pytest.mark.parametrize("name", ["ci-nightly", "admin"])
def test_a_taken_token_name_is_409(client, admin, name):
    create(client, admin, "ci-nightly")

    assert_problem(create(client, admin, name), 409, repr(name))
    assert client.get("/tokens", headers=admin).get_json()["total"] == 1


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "role": "boss"}, "role"),
    ({"name": "x", "role": "Reader"}, "role"),
    ({"name": "x"}, "role"),
    ({"role": "ci"}, "name"),
    ({"name": "bad name", "role": "ci"}, "token name"),
    ({"name": "", "role": "ci"}, "token name"),
    ({"name": "x" * 129, "role": "ci"}, "token name"),
    ({"name": "x", "role": "ci", "expires": "never"}, "expires"),
])
def test_an_invalid_token_request_is_422(client, admin, body, field):
    assert_problem(client.post("/tokens", json=body, headers=admin), 422, field)
    assert client.get("/tokens", headers=admin).get_json()["total"] == 0


def test_a_token_request_that_is_not_json_is_415(client, admin):
    response = client.post("/tokens", data={"name": "x", "role": "ci"}, headers=admin)

    assert_problem(response, 415, "application/json")
    assert client.get("/tokens", headers=admin).get_json()["total"] == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}], ids=["anonymous", "bad-token"])
def test_token_management_needs_an_admin_token(client, headers):
    for response in (client.get("/tokens", headers=headers), create(client, headers), client.delete("/tokens/x", headers=headers)):
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/models", "/models/housing", "/models/housing/versions", "/models/housing/versions/1",
                                  "/models/housing/aliases", "/models/housing/history"])
def test_with_require_auth_for_reads_reads_need_a_token(build_app, client, admin, ci, path):
    upload(client, admin, "housing", ridge())
    guarded = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()

    anonymous = guarded.get(path)
    with_ci = guarded.get(path, headers=ci)

    assert_problem(anonymous, 401)
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(guarded.get(path, headers={"Authorization": "Bearer nope"}), 401)
    assert with_ci.status_code == 200
    assert client.get(path).status_code == 200  # the default deployment keeps reads open


def test_with_require_auth_for_reads_health_checks_stay_open(build_app):
    guarded = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()

    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/readyz").status_code == 200


def test_a_token_revoked_by_another_worker_stops_writing_at_once_and_reading_within_the_trust_window(
        build_app, app, client, admin):
    revoked = bearer(create(client, admin, name="revoked-elsewhere", role="ci").get_json()["token"])
    upload(client, admin, "housing", ridge())
    guarded = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()
    assert guarded.get("/models/housing", headers=revoked).status_code == 200  # this worker verified it

    with app.app_context():  # another worker revokes it: this one's memory of it is untouched
        db.session.execute(delete(ApiToken).where(ApiToken.name == "revoked-elsewhere"))
        db.session.commit()

    assert guarded.get("/models/housing", headers=revoked).status_code == 200  # reads trust it for up to 5 s
    assert_problem(upload(guarded, revoked, "housing", ridge(alpha=2.0)), 401)  # writes ask the database every time
