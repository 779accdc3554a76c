"""Approvals count people, not tokens: a token belongs to an owner (set by an admin at creation, its own name by
default), the requester's and the uploader's other tokens cannot approve, and two approvals need two owners."""
import pytest

from tests.helpers import assert_problem, scaled_sum, upload_ok

POLICY = "/models/m/aliases/production/policy"
REQUESTS = "/models/m/aliases/production/requests"


def token(client, admin, name: str, owner: str | None = None) -> dict:
    body = {"name": name, "role": "ci", **({"owner": owner} if owner is not None else {})}
    response = client.post("/tokens", json=body, headers=admin)
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


@pytest.fixture
def tokens(client, admin, ci):
    """Model m (versions 1 and 2 by ci-test), production on 1 and protected by two approvals; tokens of
    alice (two), bob, and a second token of ci-test's owner."""
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert client.put(POLICY, json={"approvals": 2}, headers=admin).status_code == 200
    return {"alice": token(client, admin, "alice", "alice@example.com"),
            "alice-laptop": token(client, admin, "alice-laptop", "alice@example.com"),
            "bob": token(client, admin, "bob", "bob@example.com"),
            "uploader-2": token(client, admin, "uploader-2", "ci-test"),
            "carol": token(client, admin, "carol", "carol@example.com")}


def approve(client, headers, request_id):
    return client.post(f"{REQUESTS}/{request_id}/approve", json={"reason": "looks right"}, headers=headers)


def ask(client, headers) -> int:
    response = client.post(REQUESTS, json={"version": 2, "reason": "v2 is better"}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_an_admin_names_a_tokens_owner_and_the_list_shows_it(client, admin, tokens):
    listed = {t["name"]: t["owner"] for t in client.get("/tokens", headers=admin).get_json()["items"]}
    assert listed["alice-laptop"] == "alice@example.com" and listed["ci-test"] == "ci-test"


@pytest.mark.parametrize("owner", ["", "   ", "a\nb", "x" * 256])
def test_an_owner_that_names_nobody_is_422(client, admin, owner):
    body = assert_problem(client.post("/tokens", json={"name": "t", "role": "ci", "owner": owner}, headers=admin), 422)
    assert "owner" in body["errors"]


def test_two_tokens_of_one_person_are_one_approval(client, tokens):
    request_id = ask(client, tokens["bob"])
    assert approve(client, tokens["alice"], request_id).status_code == 200
    assert_problem(approve(client, tokens["alice-laptop"], request_id), 409,
                   "'alice@example.com' approved request 1 already (as 'alice')")
    assert client.get("/models/m/aliases").get_json()["production"] == 1
    assert len(client.get(f"{REQUESTS}/{request_id}").get_json()["approvals"]) == 1


def test_the_requesters_other_token_cannot_approve(client, tokens):
    request_id = ask(client, tokens["alice"])
    assert_problem(approve(client, tokens["alice-laptop"], request_id), 403, "belongs to 'alice@example.com'",
                   "opened request")


def test_the_uploaders_other_token_cannot_approve(client, tokens):
    request_id = ask(client, tokens["alice"])
    assert_problem(approve(client, tokens["uploader-2"], request_id), 403, "uploaded version 2", "'ci-test'")


def test_two_approvals_from_two_owners_move_the_alias(client, tokens):
    request_id = ask(client, tokens["alice"])
    assert approve(client, tokens["bob"], request_id).status_code == 200
    done = approve(client, tokens["carol"], request_id)
    assert done.status_code == 200 and done.get_json()["state"] == "done", done.get_json()
    assert client.get("/models/m/aliases").get_json()["production"] == 2


def test_the_requesters_other_token_may_withdraw_the_request_by_rejecting_it(client, tokens):
    request_id = ask(client, tokens["alice"])
    rejected = client.post(f"{REQUESTS}/{request_id}/reject", json={"reason": "asked from the wrong laptop"},
                           headers=tokens["alice-laptop"])
    assert rejected.status_code == 200 and rejected.get_json()["state"] == "rejected", rejected.get_json()


def test_the_shell_names_an_owner_and_lists_it(app, admin, client):
    runner = app.test_cli_runner()
    made = runner.invoke(args=["tokens", "create", "deploy", "--role", "ci", "--owner", "ops@example.com"])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(args=["tokens", "list"]).output
    assert "deploy\tci\towner ops@example.com\t" in listed
