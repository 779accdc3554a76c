"""Protected aliases over HTTP: policies, refusals that list what is missing, approval requests, break-glass."""
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from registry.db import db
from registry.events.tables import WebhookEvent
from registry.governance.tables import ApprovalRequest
from registry.tables import utcnow
from tests.helpers import assert_problem, scaled_sum, upload_ok

POLICY = "/models/m/aliases/production/policy"
REQUESTS = "/models/m/aliases/production/requests"
BREAK_GLASS = "/models/m/aliases/production/break-glass"
PUBLIC_URL = "https://93.184.215.14/hooks/registry"  # a literal public address: no DNS needed
ROLES = ("reader", "feedback", "analyst", "ci")


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def token(client, admin, name: str, role: str) -> dict:
    response = client.post("/tokens", json={"name": name, "role": role}, headers=admin)
    assert response.status_code == 201, response.get_json()
    return bearer(response.get_json()["token"])


@pytest.fixture
def people(client, admin, ci):
    """Headers by name: the uploader (ci-test, role ci), ci people alice, bob and carol, and the admin."""
    return {"uploader": ci, "admin": admin, **{name: token(client, admin, name, "ci") for name in ("alice", "bob", "carol")}}


@pytest.fixture
def served(client, ci, admin):
    """Model m with versions 1 and 2 (uploaded by ci-test), production on 1, webhooks subscribed."""
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["*"]}, headers=admin).status_code == 201


def protect(client, admin, **policy):
    response = client.put(POLICY, json=policy, headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def open_request(client, headers, version=2, reason="v2 is better"):
    response = client.post(REQUESTS, json={"version": version, "reason": reason}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def approve(client, headers, request_id, reason="looks right"):
    return client.post(f"{REQUESTS}/{request_id}/approve", json={"reason": reason}, headers=headers)


def production(client) -> int | None:
    return client.get("/models/m/aliases").get_json().get("production")


def history(client) -> list[dict]:
    return client.get("/models/m/history").get_json()["items"]


def ledger_holds(client, admin) -> bool:
    """The history's hash chain holds, over every entry the history lists and the tokens' changes."""
    verified = client.get("/audit/verify", headers=admin).get_json()
    exported = client.get("/audit/export", headers=admin).get_data(as_text=True).splitlines()
    token_changes = sum(json.loads(line)["model_id"] is None for line in exported)
    return verified["ok"] and verified["entries"] == client.get("/models/m/history").get_json()["total"] + token_changes


def webhook_types(app) -> list[str]:
    with app.app_context():
        return list(db.session.execute(select(WebhookEvent.type).order_by(WebhookEvent.id)).scalars())


# -- who may call the new routes ----------------------------------------------------------------


def test_only_admins_set_or_lift_a_policy_and_anyone_reads_it(client, admin, served):
    for role in ROLES:
        headers = token(client, admin, f"t-{role}", role)
        assert_problem(client.put(POLICY, json={"approvals": 1}, headers=headers), 403, "admin")
        assert_problem(client.delete(POLICY, headers=headers), 403, "admin")
    assert_problem(client.put(POLICY, json={"approvals": 1}), 401)
    assert_problem(client.delete(POLICY), 401)
    assert_problem(client.get(POLICY), 404, "not protected")
    protect(client, admin, approvals=1)
    assert client.get(POLICY).get_json()["policy"]["approvals"] == 1
    assert client.delete(POLICY, headers=admin).status_code == 204
    assert_problem(client.get(POLICY), 404)


@pytest.mark.parametrize("route", ["requests", "approve", "reject", "break-glass"])
def test_the_request_routes_refuse_anonymous_callers_and_roles_without_the_right(client, admin, served, people, route):
    protect(client, admin, approvals=1)
    request_id = open_request(client, people["alice"])["id"]
    url, body, allowed = {
        "requests": (REQUESTS, {"version": 2}, {"ci"}),
        "approve": (f"{REQUESTS}/{request_id}/approve", {}, {"ci"}),
        "reject": (f"{REQUESTS}/{request_id}/reject", {"reason": "no"}, {"ci"}),
        "break-glass": (BREAK_GLASS, {"version": 2, "reason": "outage"}, set()),
    }[route]
    assert_problem(client.post(url, json=body), 401)
    for role in ROLES:
        response = client.post(url, json=body, headers=token(client, admin, f"t-{role}", role))
        if role in allowed:
            assert response.status_code not in (401, 403), response.get_json()
        else:
            assert_problem(response, 403)
    assert client.get(REQUESTS).status_code == 200  # reads are open
    assert_problem(client.get("/models/m/aliases/Not,an-alias/requests"), 404, "no alias has such a name")
    assert client.get(f"{REQUESTS}/{request_id}").status_code == 200


# -- policies and refusals -------------------------------------------------------------------------


def test_a_move_the_policy_does_not_allow_is_409_with_a_list_of_what_is_missing(client, admin, served, people):
    protect(client, admin, approvals=2, require={"card": ["intended_use"],
                                                 "evaluation": {"dataset": "holdout", "metric": "r2", "margin": 0.01}})
    body = assert_problem(client.post("/models/m/versions/2/promote", json={}, headers=admin), 409, "production")
    assert [item["rule"] for item in body["missing"]] == ["evaluation", "card", "approvals"]
    assert all(item["detail"] for item in body["missing"])
    assert body["missing"][2]["needed"] == 2 and body["missing"][2]["given"] == 0
    assert production(client) == 1


def test_evidence_counts_once_it_is_there(client, admin, served, people):
    protect(client, admin, require={"card": ["intended_use"], "evaluation": {"dataset": "holdout", "metric": "r2",
                                                                             "margin": 0.01}})
    dataset = {"name": "holdout", "sha256": "a" * 64, "rows": 100}
    for version, r2 in ((1, 0.50), (2, 0.505)):
        response = client.post(f"/models/m/versions/{version}/evaluations", json={"dataset": dataset,
                                                                                  "metrics": {"r2": r2}}, headers=admin)
        assert response.status_code == 201, response.get_json()
    assert client.patch("/models/m/versions/2", json={"intended_use": "pricing"}, headers=admin).status_code == 200
    body = assert_problem(client.post("/models/m/versions/2/promote", json={}, headers=admin), 409)
    assert [item["rule"] for item in body["missing"]] == ["evaluation"]  # a gain of 0.005 < 0.01
    client.post("/models/m/versions/2/evaluations", json={"dataset": dataset, "metrics": {"r2": 0.52}}, headers=admin)
    protect(client, admin, approvals=1, require={"evaluation": {"dataset": "holdout", "metric": "r2", "margin": 0.01},
                                                 "card": ["intended_use"]})
    request = open_request(client, people["alice"])
    assert request["evidence"] == {
        "evaluation": {"dataset": "holdout", "metric": "r2", "margin": 0.01, "candidate": 0.52, "served": 0.5,
                       "served_version": 1},
        "card": {"intended_use": "pricing"}}
    assert [item["rule"] for item in request["missing"]] == ["approvals"]
    protect(client, admin, require={"card": ["intended_use"], "evaluation": {"dataset": "holdout", "metric": "r2",
                                                                             "margin": 0.01}})
    assert client.post("/models/m/versions/2/promote", json={}, headers=admin).status_code == 200
    assert production(client) == 2


def test_a_version_with_other_inputs_is_refused_by_compatible_signature_even_when_forced(client, admin, ci, served,
                                                                                       people):
    upload_ok(client, ci, "m", scaled_sum(3, n_features=4))  # version 3 reads four columns, production three
    protect(client, admin, approvals=1, require={"compatible_signature": True})
    body = assert_problem(client.post("/models/m/versions/3/promote", json={"force": True}, headers=admin), 409)
    assert [item["rule"] for item in body["missing"]] == ["compatible_signature", "approvals"]
    assert "version 3 is incompatible with the served version" in body["missing"][0]["detail"]
    request = open_request(client, people["alice"], version=3)  # the request shows what differs, side by side
    assert request["evidence"]["signature"]
    assert [item["rule"] for item in request["missing"]] == ["compatible_signature", "approvals"]
    assert_problem(approve(client, people["bob"], request["id"]), 409, "compatible_signature missing")  # no vote overrides it
    assert [item["rule"] for item in open_request(client, people["alice"])["missing"]] == ["approvals"]  # same inputs
    assert production(client) == 1


def test_a_mover_not_named_by_the_policy_is_refused(client, admin, served, people):
    protect(client, admin, movers={"roles": ["admin"], "tokens": ["alice"]})
    body = assert_problem(client.post("/models/m/versions/2/promote", json={}, headers=people["bob"]), 409)
    assert [item["rule"] for item in body["missing"]] == ["movers"]
    assert client.post("/models/m/versions/2/promote", json={}, headers=people["alice"]).status_code == 200


def test_policy_changes_are_history_events_and_webhook_events(app, client, admin, served):
    protect(client, admin, approvals=1, reason="release process")
    assert client.delete(POLICY, query_string={"reason": "done"}, headers=admin).status_code == 204
    entries = history(client)[:2]
    assert [(e["action"], e["actor"], e["reason"]) for e in entries] == [
        ("policy_delete", "admin", "done"), ("policy_set", "admin", "release process")]
    assert entries[1]["details"]["policy"]["approvals"] == 1
    assert webhook_types(app)[-2:] == ["policy.changed", "policy.changed"]


@pytest.mark.parametrize("policy, field", [
    ({"approvals": -1}, "approvals"), ({"approvals": 11}, "approvals"), ({"movers": {"roles": ["root"]}}, "movers"),
    ({"require": {"card": ["colour"]}}, "require"), ({"freeze": [{"from": "yesterday"}]}, "freeze"),
    ({"surprise": 1}, "surprise"), ({"require": {"evaluation": {"metric": "r2"}}}, "require"),
    ({"require": {"evaluation": {"dataset": "a\u0000b", "metric": "r2"}}}, "require"),
    ({"freeze": [{"from": "0001-01-01T00:00:00+01:00", "until": "2030-01-01T00:00:00Z"}]}, "freeze"),
])
def test_a_policy_that_cannot_be_read_is_422_naming_the_field(client, admin, served, policy, field):
    body = assert_problem(client.put(POLICY, json=policy, headers=admin), 422)
    assert field in body["errors"]


def test_a_policy_nobody_could_move_under_or_a_backwards_freeze_is_422(client, admin, served):
    assert_problem(client.put(POLICY, json={"movers": {"roles": [], "tokens": []}}, headers=admin), 422, "nobody")
    window = {"from": "2026-12-24T00:00:00Z", "until": "2026-12-23T00:00:00Z"}
    assert_problem(client.put(POLICY, json={"freeze": [window]}, headers=admin), 422, "ends before it starts")


def test_a_frozen_alias_refuses_moves_and_rollbacks(client, admin, served):
    assert client.post("/models/m/versions/2/promote", json={}, headers=admin).status_code == 200
    now = utcnow()
    window = {"from": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(hours=1)).isoformat(),
              "reason": "year-end"}
    protect(client, admin, freeze=[window])
    body = assert_problem(client.post("/models/m/versions/1/promote", json={}, headers=admin), 409, "freeze")
    assert [item["rule"] for item in body["missing"]] == ["freeze"] and "year-end" in body["missing"][0]["detail"]
    rollback = assert_problem(client.post("/models/m/rollback", json={}, headers=admin), 409, "freeze")
    assert [item["rule"] for item in rollback["missing"]] == ["freeze"]
    assert_problem(client.delete("/models/m/aliases/production", headers=admin), 409, "freeze")
    assert production(client) == 2


def test_a_plan_that_would_promote_a_protected_alias_by_itself_is_refused_up_front(client, admin, served, people):
    protect(client, admin, approvals=1)
    plan = {"steps": [{"percent": 50, "min_requests": 100, "max_minutes": 10}]}
    body = assert_problem(client.put("/models/m/aliases/production/rollout",
                                     json={"canary": {"version": 2}, "plan": plan}, headers=admin), 409, "plan")
    assert {item["rule"] for item in body["missing"]} == {"movers", "approvals"}
    halting = {"canary": {"version": 2}, "plan": {**plan, "on_success": "halt"}}
    body = assert_problem(client.put("/models/m/aliases/production/rollout", json=halting, headers=admin), 409)
    assert [item["rule"] for item in body["missing"]] == ["approvals"]  # its canary answers callers: approved first
    asked = client.post(REQUESTS, json={"version": 2, "rollout": {"plan": plan}}, headers=admin)
    assert_problem(asked, 409, "plan")  # a plan that would promote by itself is refused when asked for, too
    request = client.post(REQUESTS, json={"version": 2, "rollout": {"plan": halting["plan"]}}, headers=admin).get_json()
    assert approve(client, people["alice"], request["id"]).get_json()["state"] == "done"
    assert client.get("/models/m/aliases/production/rollout").get_json()["plan"]["state"] == "running"
    assert_problem(client.post("/models/m/aliases/production/rollout/promote", json={}, headers=admin), 409, "approvals")


# -- approval requests ---------------------------------------------------------------------------


def test_distinct_people_approve_and_the_last_approval_moves_the_alias(app, client, admin, served, people):
    protect(client, admin, approvals=2)
    request = open_request(client, people["alice"])
    assert (request["state"], request["version"], request["requested_by"]) == ("open", 2, "alice")
    assert [item["rule"] for item in request["missing"]] == ["approvals"]

    assert_problem(approve(client, people["alice"], request["id"]), 403, "opened request")
    assert_problem(approve(client, people["uploader"], request["id"]), 403, "uploaded version 2")
    first = approve(client, people["bob"], request["id"])
    assert first.status_code == 200 and first.get_json()["state"] == "open"
    assert [a["approver"] for a in first.get_json()["approvals"]] == ["bob"]
    assert_problem(approve(client, people["bob"], request["id"]), 409, "approved request")
    assert production(client) == 1

    done = approve(client, people["carol"], request["id"], reason="second pair of eyes")
    assert done.status_code == 200, done.get_json()
    body = done.get_json()
    assert body["state"] == "done" and body["missing"] == [] and body["closed_by"] == "carol"
    assert production(client) == 2
    move = history(client)[0]
    assert move["id"] == body["event_id"]
    assert (move["action"], move["from_version"], move["to_version"], move["actor"]) == ("promote", 1, 2, "alice")
    assert move["details"] == {"request_id": request["id"], "approved_by": ["bob", "carol"]}
    assert [e["action"] for e in history(client)[1:4]] == ["approve", "approve", "request_open"]
    assert {"approval.requested", "approval.granted", "alias.moved"} <= set(webhook_types(app))
    assert_problem(approve(client, admin, request["id"]), 409, "done")
    assert ledger_holds(client, admin)  # policy, request and approvals are links of the ledger's chain


def test_a_rejected_request_needs_a_reason_and_cannot_be_approved(app, client, admin, served, people):
    protect(client, admin, approvals=1)
    request = open_request(client, people["alice"])
    assert_problem(client.post(f"{REQUESTS}/{request['id']}/reject", json={}, headers=people["bob"]), 422, "reason")
    rejected = client.post(f"{REQUESTS}/{request['id']}/reject", json={"reason": "no model card"}, headers=people["bob"])
    assert rejected.status_code == 200 and rejected.get_json()["state"] == "rejected"
    assert rejected.get_json()["close_reason"] == "no model card"
    assert_problem(approve(client, people["carol"], request["id"]), 409, "rejected")
    assert client.get(REQUESTS, query_string={"state": "rejected"}).get_json()["total"] == 1
    assert production(client) == 1
    assert webhook_types(app)[-1] == "approval.rejected"


def test_an_expired_request_cannot_be_approved(app, client, admin, served, people):
    protect(client, admin, approvals=1, request_hours=1)
    request = open_request(client, people["alice"])
    with app.app_context():
        db.session.execute(update(ApprovalRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert_problem(approve(client, people["bob"], request["id"]), 409, "expired")
    assert client.get(f"{REQUESTS}/{request['id']}").get_json()["state"] == "expired"
    assert history(client)[0]["action"] == "request_expire"
    assert "approval.expired" in webhook_types(app)
    assert production(client) == 1


def test_a_request_is_refused_where_no_approval_is_needed_or_by_a_non_mover(client, admin, served, people):
    assert_problem(client.post(REQUESTS, json={"version": 2}, headers=people["alice"]), 409, "needs no approval")
    protect(client, admin, approvals=1, movers={"roles": ["admin"]})
    body = assert_problem(client.post(REQUESTS, json={"version": 2}, headers=people["alice"]), 409)
    assert body["missing"][0]["rule"] == "movers"
    assert_problem(client.post(REQUESTS, json={"version": 9}, headers=admin), 404)


def test_the_final_approval_is_refused_with_what_is_missing_and_not_recorded(client, admin, served, people):
    protect(client, admin, approvals=1, require={"card": ["limitations"]})
    request = open_request(client, people["alice"])
    body = assert_problem(approve(client, people["bob"], request["id"]), 409)
    assert [item["rule"] for item in body["missing"]] == ["card"]
    assert client.get(f"{REQUESTS}/{request['id']}").get_json()["approvals"] == []
    client.patch("/models/m/versions/2", json={"limitations": "prices under 1M"}, headers=admin)
    assert approve(client, people["bob"], request["id"]).get_json()["state"] == "done"
    assert production(client) == 2


def test_concurrent_approvals_move_the_alias_exactly_once(app, client, admin, served, people):
    protect(client, admin, approvals=2)
    request_id = open_request(client, people["alice"])["id"]
    approvers = [people["bob"], people["carol"], admin] + [token(client, admin, f"p{i}", "ci") for i in range(3)]
    barrier = threading.Barrier(len(approvers))

    def run(headers):
        local = app.test_client()
        barrier.wait()
        return approve(local, headers, request_id)

    with ThreadPoolExecutor(max_workers=len(approvers)) as pool:
        responses = list(pool.map(run, approvers))
    assert {r.status_code for r in responses} <= {200, 409}, [r.get_json() for r in responses]
    moves = [e for e in history(client) if e["action"] == "promote" and e["to_version"] == 2]
    assert len(moves) == 1
    final = client.get(f"{REQUESTS}/{request_id}").get_json()
    assert final["state"] == "done" and final["event_id"] == moves[0]["id"]
    assert len(final["approvals"]) == 2 and moves[0]["details"]["approved_by"] == [a["approver"] for a in final["approvals"]]
    assert production(client) == 2
    assert ledger_holds(client, admin)


# -- break-glass ------------------------------------------------------------------------------------


def test_break_glass_needs_a_reason_and_an_admin_and_is_loud(app, client, admin, served, people):
    protect(client, admin, approvals=2, freeze=[{"from": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}])
    assert_problem(client.post(BREAK_GLASS, json={"version": 2}, headers=admin), 422, "reason")
    assert_problem(client.post(BREAK_GLASS, json={"version": 2, "reason": ""}, headers=admin), 422, "reason")
    assert_problem(client.post(BREAK_GLASS, json={"version": 2, "reason": "outage"}, headers=people["bob"]), 403)
    moved = client.post(BREAK_GLASS, json={"version": 2, "reason": "v1 leaks memory"}, headers=admin)
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["version"] == 2 and production(client) == 2
    entry = history(client)[0]
    assert (entry["action"], entry["actor"], entry["reason"]) == ("break_glass", "admin", "v1 leaks memory")
    assert {"alias.break_glass", "alias.moved"} <= set(webhook_types(app))
    assert ledger_holds(client, admin)
    # undone like any promote, if the policy lets the mover (here only break-glass would: it is frozen)
    assert_problem(client.post("/models/m/rollback", json={}, headers=admin), 409, "freeze")
    at = client.get("/models/m/aliases", query_string={"at": utcnow().isoformat()}).get_json()
    assert at == {"production": 2}  # time travel replays a broken glass as the move it is


def test_a_request_whose_policy_was_lifted_is_completed_by_the_next_approval(client, admin, served, people):
    protect(client, admin, approvals=3)
    request = open_request(client, people["alice"])
    assert approve(client, people["bob"], request["id"]).get_json()["state"] == "open"
    assert client.delete(POLICY, headers=admin).status_code == 204
    done = approve(client, people["carol"], request["id"])
    assert done.status_code == 200 and done.get_json()["state"] == "done", done.get_json()
    assert production(client) == 2
