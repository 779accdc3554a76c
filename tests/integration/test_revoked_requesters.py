"""Revoking a token closes what it asked for: its open approval requests end withdrawn (a history entry, a
webhook event), in the revocation's transaction, so no later approval moves an alias for a revoked token."""
import pytest
from sqlalchemy import select

from registry.db import db
from registry.events.tables import WebhookEvent
from tests.helpers import assert_problem, scaled_sum, upload_ok

POLICY = "/models/m/aliases/production/policy"
REQUESTS = "/models/m/aliases/production/requests"
PUBLIC_URL = "https://93.184.215.14/hooks/registry"


def bearer(client, admin, name: str) -> dict:
    response = client.post("/tokens", json={"name": name, "role": "ci"}, headers=admin)
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


@pytest.fixture
def people(client, admin, ci):
    """Model m (versions 1 and 2 by ci-test, production on 1), webhooks subscribed, and three ci people."""
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["*"]}, headers=admin).status_code == 201
    return {name: bearer(client, admin, name) for name in ("alice", "bob", "carol")}


def ask(client, headers, **extra) -> dict:
    response = client.post(REQUESTS, json={"version": 2, "reason": "v2 is better", **extra}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_revoked_requesters_open_request_is_withdrawn_and_no_approval_moves_the_alias(app, client, admin, people):
    assert client.put(POLICY, json={"approvals": 2}, headers=admin).status_code == 200
    request = ask(client, people["alice"])
    assert client.post(f"{REQUESTS}/{request['id']}/approve", json={}, headers=people["bob"]).status_code == 200

    assert client.delete("/tokens/alice", headers=admin).status_code == 204

    withdrawn = client.get(f"{REQUESTS}/{request['id']}").get_json()
    assert (withdrawn["state"], withdrawn["closed_by"]) == ("withdrawn", "admin")
    assert "'alice'" in withdrawn["close_reason"] and "revoked" in withdrawn["close_reason"]
    assert_problem(client.post(f"{REQUESTS}/{request['id']}/approve", json={}, headers=people["carol"]), 409,
                   "is withdrawn")
    assert client.get("/models/m/aliases").get_json()["production"] == 1
    entry = client.get("/models/m/history").get_json()["items"][0]
    assert (entry["action"], entry["actor"], entry["details"]) == (
        "request_withdraw", "admin", {"request_id": request["id"], "requested_by": "alice"})
    assert client.get(f"{REQUESTS}?state=withdrawn").get_json()["total"] == 1
    with app.app_context():
        types = list(db.session.execute(select(WebhookEvent.type).order_by(WebhookEvent.id)).scalars())
    assert types[-1] == "approval.withdrawn"
    assert client.get("/audit/verify", headers=admin).get_json()["ok"]


def test_the_last_approval_of_a_revoked_requesters_request_is_refused_not_recorded_as_their_promote(client, admin,
                                                                                                  people):
    assert client.put(POLICY, json={"approvals": 1}, headers=admin).status_code == 200
    request = ask(client, people["alice"])
    assert client.delete("/tokens/alice", headers=admin).status_code == 204
    assert_problem(client.post(f"{REQUESTS}/{request['id']}/approve", json={}, headers=people["bob"]), 409)
    assert client.get("/models/m/aliases").get_json()["production"] == 1
    history = client.get("/models/m/history").get_json()["items"]
    assert not [e for e in history if e["action"] == "promote" and e["actor"] == "alice"]


def test_only_the_revoked_tokens_open_requests_end(client, admin, people):
    assert client.put(POLICY, json={"approvals": 1}, headers=admin).status_code == 200
    done = ask(client, people["alice"], version=1)  # the version served: its approval closes it, nothing moves
    assert client.post(f"{REQUESTS}/{done['id']}/approve", json={}, headers=people["bob"]).get_json()["state"] == "done"
    alices, carols = ask(client, people["alice"], rollout={"percent": 10}), ask(client, people["carol"])

    assert client.delete("/tokens/alice", headers=admin).status_code == 204

    states = {r["id"]: r["state"] for r in client.get(REQUESTS).get_json()["items"]}
    assert states == {done["id"]: "done", alices["id"]: "withdrawn", carols["id"]: "open"}


def test_the_shell_revokes_and_withdraws_alike(app, client, admin, people):
    assert client.put(POLICY, json={"approvals": 1}, headers=admin).status_code == 200
    request = ask(client, people["alice"])
    result = app.test_cli_runner().invoke(args=["tokens", "revoke", "alice"])
    assert result.exit_code == 0, result.output
    withdrawn = client.get(f"{REQUESTS}/{request['id']}").get_json()
    assert (withdrawn["state"], withdrawn["closed_by"]) == ("withdrawn", "flask tokens")
