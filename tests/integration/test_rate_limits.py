"""Failed authentication is limited per client address: bad bearer tokens and refused sign-ins count,
and past the limit only they are refused; a good token, a request without one and health checks never
are, so one guesser behind a NAT locks nobody else out. Proxies are read past when trusted."""
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
    assert client.get("/tokens", headers=BAD, **from_address("10.0.0.2")).status_code == 401


def test_past_the_limit_a_good_token_and_a_request_without_one_are_answered(client, admin, ci):
    for _ in range(LIMIT + 3):
        client.get("/tokens", headers=BAD)
    assert client.get("/tokens", headers=BAD).status_code == 429

    assert client.get("/tokens", headers=admin).status_code == 200
    assert client.post("/tokens", json={"name": "late", "role": "reader"}, headers=admin).status_code == 201
    assert client.get("/models").status_code == 200  # anonymous read
    assert_problem(client.get("/tokens"), 401, "send 'Authorization: Bearer <token>'")  # no token: not a guess
    assert client.get("/tokens", headers=BAD).status_code == 429


def test_good_requests_and_requests_without_a_token_are_never_counted(client, admin):
    assert {client.get("/tokens", headers=admin).status_code for _ in range(4 * LIMIT)} == {200}
    assert {client.get("/tokens").status_code for _ in range(4 * LIMIT)} == {401}
    assert client.get("/tokens", headers=BAD).status_code == 401


def test_a_bad_token_sent_where_none_is_needed_is_neither_checked_nor_counted(client):
    assert {client.get("/models", headers=BAD).status_code for _ in range(4 * LIMIT)} == {200}
    assert client.get("/tokens", headers=BAD).status_code == 401


def test_health_checks_are_never_refused(client):
    for _ in range(LIMIT + 1):
        client.get("/tokens", headers=BAD)
    assert [client.get(path).status_code for path in ("/healthz", "/v2/health/live", "/metrics")] == [200] * 3
    assert client.get("/readyz").status_code in (200, 503)  # ready or not, but answered


def _sign_in(client, token: str):
    page = client.get("/ui/sign-in")
    assert page.status_code == 200
    csrf = CSRF_FIELD.search(page.get_data(as_text=True)).group(1)
    return client.post("/ui/sign-in", data={"csrf_token": csrf, "token": token})


def test_refused_sign_ins_count_too_and_past_the_limit_only_they_are_refused(client, admin):
    assert [_sign_in(client, "wrong").status_code for _ in range(LIMIT)] == [400] * LIMIT

    assert _sign_in(client, "wrong").status_code == 429
    assert client.get("/tokens", headers=BAD).status_code == 429
    assert _sign_in(client, admin["Authorization"].split()[1]).status_code == 302


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


def test_a_store_that_does_not_answer_fails_no_request(build_app, admin, caplog):
    client = build_app(AUTH_FAILURES_PER_MINUTE=LIMIT, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1").test_client()

    assert {client.get("/tokens", headers=BAD).status_code for _ in range(LIMIT + 2)} == {401}
    assert client.get("/tokens", headers=admin).status_code == 200
    assert "the rate-limit store did not answer" in caplog.text
