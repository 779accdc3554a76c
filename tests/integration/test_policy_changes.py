"""A policy that changes while a request is open: an approval counts under the new policy only if it says the
same of what the approver vouched for (its movers and its require); a change of how many approve keeps it; a
policy lifted and set again starts the request's evidence again. Approvals set aside are shown so, in the
request and in the policy change's history entry, and their people may approve again."""
import pytest

from tests.helpers import assert_problem, scaled_sum, upload_ok

POLICY = "/models/m/aliases/production/policy"
REQUESTS = "/models/m/aliases/production/requests"
CARD = {"require": {"card": ["description"]}}


@pytest.fixture
def people(client, admin, ci, tokens):
    """Model m (versions 1 and 2 by ci-test, v2 described; production on 1), and three people with ci tokens."""
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.patch("/models/m/versions/2", json={"description": "sum, doubled"}, headers=ci).status_code == 200
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    return {name: tokens(name, "ci") for name in ("alice", "bob", "carol")}


def protect(client, admin, **policy) -> None:
    response = client.put(POLICY, json=policy, headers=admin)
    assert response.status_code == 200, response.get_json()


def ask(client, ci) -> int:
    response = client.post(REQUESTS, json={"version": 2, "reason": "v2 is better"}, headers=ci)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def approve(client, headers, request_id: int) -> dict:
    response = client.post(f"{REQUESTS}/{request_id}/approve", json={"reason": "looks right"}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def standing(body: dict) -> list[tuple]:
    return [(given["approver"], given["counts"]) for given in body["approvals"]]


def last_policy_entry(client) -> dict:
    return next(entry for entry in client.get("/models/m/history?per_page=100").get_json()["items"]
                if entry["action"].startswith("policy_"))


def test_a_policy_that_asks_other_evidence_sets_earlier_approvals_aside(client, admin, ci, people):
    protect(client, admin, approvals=2)
    request_id = ask(client, ci)
    approve(client, people["alice"], request_id)
    given_under = last_policy_entry(client)["id"]

    protect(client, admin, approvals=2, **CARD)

    body = client.get(f"{REQUESTS}/{request_id}").get_json()
    [alice] = body["approvals"]
    assert (alice["approver"], alice["policy_entry"], alice["counts"]) == ("alice", given_under, False)
    assert f"given under the policy of entry {given_under}" in alice["set_aside"] and "require" in alice["set_aside"]
    assert [m for m in body["missing"] if m["rule"] == "approvals"][0]["given"] == 0
    entry = last_policy_entry(client)
    assert entry["details"]["requests"] == [{"request_id": request_id, "counted": [], "set_aside": ["alice"]}]

    # bob's approval is the first under the new policy: the request stays open, production stays on 1
    assert approve(client, people["bob"], request_id)["state"] == "open"
    assert client.get("/models/m/aliases").get_json()["production"] == 1
    # alice approves again, under the policy now: that completes it
    done = approve(client, people["alice"], request_id)
    assert done["state"] == "done"
    assert client.get("/models/m/aliases").get_json()["production"] == 2
    assert [given["approver"] for given in done["approvals"]] == ["alice", "bob"]
    assert {given["policy_entry"] for given in done["approvals"]} == {entry["id"]}


def test_a_policy_with_other_movers_sets_earlier_approvals_aside(client, admin, ci, people):
    protect(client, admin, approvals=2)
    request_id = ask(client, ci)
    approve(client, people["alice"], request_id)

    protect(client, admin, approvals=2, movers={"roles": ["admin", "ci"], "tokens": ["release-bot"]})

    assert standing(client.get(f"{REQUESTS}/{request_id}").get_json()) == [("alice", False)]
    assert approve(client, people["bob"], request_id)["state"] == "open"


def test_a_policy_that_changes_only_how_many_approve_keeps_the_approvals_given(client, admin, ci, people):
    protect(client, admin, approvals=3)
    request_id = ask(client, ci)
    approve(client, people["alice"], request_id)
    approve(client, people["bob"], request_id)

    protect(client, admin, approvals=2, request_hours=24,
            freeze=[{"from": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z"}])

    body = client.get(f"{REQUESTS}/{request_id}").get_json()
    assert standing(body) == [("alice", True), ("bob", True)]
    assert [given["set_aside"] for given in body["approvals"]] == [None, None]
    assert last_policy_entry(client)["details"]["requests"] == [
        {"request_id": request_id, "counted": ["alice", "bob"], "set_aside": []}]
    assert_problem(client.post(f"{REQUESTS}/{request_id}/approve", json={}, headers=people["alice"]), 409,
                   "approved request")  # a counted approval is not given twice
    assert approve(client, people["carol"], request_id)["state"] == "done"


def test_a_policy_lifted_and_set_again_starts_the_requests_evidence_again(client, admin, ci, people):
    protect(client, admin, approvals=2)
    request_id = ask(client, ci)
    approve(client, people["alice"], request_id)

    assert client.delete(f"{POLICY}?reason=reorganising", headers=admin).status_code == 204
    lifted = last_policy_entry(client)
    protect(client, admin, approvals=2)  # the very same policy

    assert lifted["details"]["requests"] == [{"request_id": request_id, "counted": [], "set_aside": ["alice"]}]
    [alice] = client.get(f"{REQUESTS}/{request_id}").get_json()["approvals"]
    assert alice["counts"] is False and f"lifted at entry {lifted['id']}" in alice["set_aside"]
    assert approve(client, people["bob"], request_id)["state"] == "open"
    assert client.get("/models/m/aliases").get_json()["production"] == 1
    assert approve(client, people["carol"], request_id)["state"] == "done"
    assert client.get("/audit/verify", headers=admin).get_json()["ok"] is True
