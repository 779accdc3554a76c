"""Failed authentication is limited per client address: bad bearer tokens and refused sign-ins count,
good requests never do, health checks are never refused, and proxies are read past when trusted."""
import re

import pytest

from tests.helpers import assert_problem

LIMIT = 5
BAD = {"Authorization": "Bearer not-a-token"}
CSRF_FIELD = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def app(build_app):
    return build_app(AUTH_FAILURES_PER_MINUTE=LIMIT)


@pytest.fixture
def client(app):
    return app.test_client()


def from_address(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


def test_bad_tokens_past_the_limit_are_429_with_retry_after_for_that_address_only(client, admin):
    assert [client.get("/tokens", headers=BAD).status_code for _ in range(LIMIT)] == [401] * LIMIT

    refused = client.get("/tokens", headers=BAD)
    body = assert_problem(refused, 429, "too many failed authentications")
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert body["status"] == 429
    assert client.get("/tokens", headers=admin).status_code == 429  # the address waits, whatever it sends
    assert client.get("/tokens", headers=admin, **from_address("10.0.0.2")).status_code == 200


def test_good_requests_are_never_counted(client, admin):
    assert {client.get("/tokens", headers=admin).status_code for _ in range(4 * LIMIT)} == {200}


def test_health_checks_are_never_refused(client):
    for _ in range(LIMIT + 1):
        client.get("/tokens", headers=BAD)
    assert [client.get(path).status_code for path in ("/healthz", "/v2/health/live", "/metrics")] == [200] * 3
    assert client.get("/readyz").status_code in (200, 503)  # ready or not, but answered


def test_refused_sign_ins_count_too(client):
    for _ in range(LIMIT):
        page = client.get("/ui/sign-in")
        token = CSRF_FIELD.search(page.get_data(as_text=True)).group(1)
        assert client.post("/ui/sign-in", data={"csrf_token": token, "token": "wrong"}).status_code == 400
    assert client.get("/ui/sign-in").status_code == 429


def test_behind_a_trusted_proxy_each_client_is_counted_apart(build_app):
    client = build_app(AUTH_FAILURES_PER_MINUTE=LIMIT, PROXY_HOPS=1).test_client()
    proxy = from_address("10.0.0.1")
    for _ in range(LIMIT + 1):
        client.get("/tokens", headers={**BAD, "X-Forwarded-For": "203.0.113.7"}, **proxy)
    assert client.get("/tokens", headers={**BAD, "X-Forwarded-For": "203.0.113.7"}, **proxy).status_code == 429
    assert client.get("/tokens", headers={**BAD, "X-Forwarded-For": "203.0.113.8"}, **proxy).status_code == 401


def test_a_limit_of_zero_turns_it_off(build_app):
    client = build_app(AUTH_FAILURES_PER_MINUTE=0).test_client()
    assert {client.get("/tokens", headers=BAD).status_code for _ in range(3 * LIMIT)} == {401}
