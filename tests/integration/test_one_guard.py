"""One guard for what an alias answers: a canary of any share, a plan's first step, its later steps and the
rollout controller are judged by the alias's policy as a promote is; a shadow, which answers nobody, is not."""
from datetime import timedelta

import pytest

from registry.aliases import rollouts
from registry.db import end_read
from registry.errors import PolicyRefused
from registry.tables import utcnow
from tests.helpers import PROBE_ROW, assert_problem, scaled_sum, upload_ok

POLICY = "/models/m/aliases/production/policy"
ROLLOUT = "/models/m/aliases/production/rollout"
REQUESTS = "/models/m/aliases/production/requests"
FROZEN = [{"from": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z", "reason": "year-end"}]
HALTING_PLAN = {"steps": [{"percent": 5, "min_requests": 50, "max_minutes": 10},
                          {"percent": 50, "min_requests": 50, "max_minutes": 10}], "on_success": "halt"}


@pytest.fixture
def served(client, ci):
    """Model m with versions 1 and 2 (uploaded by ci-test), production on 1."""
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200


def protect(client, admin, **policy):
    response = client.put(POLICY, json=policy, headers=admin)
    assert response.status_code == 200, response.get_json()


def answering_versions(client, n=200) -> set[int]:
    """Which versions answered ``n`` anonymous production requests."""
    versions = set()
    for _ in range(n):
        response = client.post("/models/m/predict", json={"instances": [PROBE_ROW]})
        assert response.status_code == 200, response.get_json()
        versions.add(response.get_json()["version"])
    return versions


def rules(body: dict) -> list[str]:
    return [item["rule"] for item in body["missing"]]


def test_a_ci_canary_of_99_99_percent_on_a_frozen_two_approval_alias_is_refused_and_v1_still_answers(
        client, admin, ci, served):
    protect(client, admin, approvals=2, freeze=FROZEN)
    body = assert_problem(client.put(ROLLOUT, json={"canary": {"version": 2, "percent": 99.99}}, headers=ci), 409,
                          "does not allow this canary")
    assert rules(body) == ["freeze", "approvals"]
    assert_problem(client.get(ROLLOUT), 404)  # nothing was started
    assert answering_versions(client) == {1}


@pytest.mark.parametrize("percent", [0.01, 1, 50, 100])
def test_a_canary_of_any_share_needs_the_approvals_a_promote_needs(client, admin, ci, served, percent):
    protect(client, admin, approvals=1)
    body = assert_problem(client.put(ROLLOUT, json={"canary": {"version": 2, "percent": percent}}, headers=ci), 409)
    assert rules(body) == ["approvals"] and "with a \"rollout\"" in body["missing"][0]["detail"]
    assert answering_versions(client, 50) == {1}


def test_a_plans_first_step_is_refused_by_a_freeze_even_where_the_controller_may_move(client, admin, ci, served):
    protect(client, admin, movers={"roles": ["admin", "ci"], "tokens": ["autopilot"]}, freeze=FROZEN)
    body = assert_problem(client.put(ROLLOUT, json={"canary": {"version": 2}, "plan": HALTING_PLAN}, headers=ci), 409)
    assert rules(body) == ["freeze"]
    assert_problem(client.get(ROLLOUT), 404)


def test_a_canary_is_refused_a_mover_the_policy_does_not_name_and_evidence_the_version_lacks(client, admin, ci,
                                                                                              served):
    protect(client, admin, movers={"roles": ["admin"]}, require={"card": ["intended_use"]})
    body = assert_problem(client.put(ROLLOUT, json={"canary": {"version": 2, "percent": 1}}, headers=ci), 409)
    assert rules(body) == ["movers", "card"]


def test_a_shadow_answers_nobody_so_a_frozen_two_approval_alias_runs_one(client, admin, ci, served):
    protect(client, admin, approvals=2, freeze=FROZEN)
    response = client.put(ROLLOUT, json={"shadow": {"version": 2, "percent": 100}}, headers=ci)
    assert response.status_code == 200, response.get_json()
    assert answering_versions(client, 20) == {1}
    with_canary = {"canary": {"version": 2, "percent": 1}, "shadow": {"version": 2, "percent": 100}}
    assert rules(assert_problem(client.put(ROLLOUT, json=with_canary, headers=ci), 409)) == ["freeze", "approvals"]
    assert client.get(ROLLOUT).get_json()["canary"] is None  # the shadow runs on, alone


def test_an_unprotected_alias_runs_a_canary_as_before(client, ci, served):
    response = client.put(ROLLOUT, json={"canary": {"version": 2, "percent": 100}}, headers=ci)
    assert response.status_code == 200, response.get_json()
    assert answering_versions(client, 20) == {2}


def test_an_approved_rollout_request_starts_the_canary_and_its_steps_carry_the_approval(app, client, admin, ci,
                                                                                       served):
    protect(client, admin, approvals=1)
    request = client.post(REQUESTS, json={"version": 2, "reason": "a careful canary", "rollout": {"percent": 100}},
                          headers=admin).get_json()
    assert request["rollout"] == {"percent": 100, "plan": None, "sticky_header": None}
    for asked in ({"percent": 10, "sticky_header": "Not A Header"}, {"percent": 10, "plan": HALTING_PLAN}, {}):
        assert_problem(client.post(REQUESTS, json={"version": 2, "rollout": asked}, headers=admin), 422)
    assert rules(request) == ["approvals"]
    assert answering_versions(client, 20) == {1}  # asked for, not approved: nobody gets v2
    assert_problem(client.post(f"{REQUESTS}/{request['id']}/approve", json={}, headers=ci), 403, "uploaded")
    approved = client.post(f"{REQUESTS}/{request['id']}/approve", json={"reason": "go"}, headers=_person(client, admin))
    assert approved.status_code == 200 and approved.get_json()["state"] == "done", approved.get_json()
    started = client.get("/models/m/history").get_json()["items"][0]
    assert started["action"] == "rollout_start" and started["actor"] == "admin"
    assert started["details"]["request_id"] == request["id"] and started["details"]["approved_by"] == ["alice"]
    assert answering_versions(client, 20) == {2}
    assert client.get("/models/m/aliases").get_json()["production"] == 1  # a canary, not a promote


def test_a_plans_later_step_is_judged_again_a_freeze_begun_meanwhile_stops_it(app, client, admin, ci, served):
    protect(client, admin, approvals=1)
    request = client.post(REQUESTS, json={"version": 2, "rollout": {"plan": HALTING_PLAN}}, headers=admin).get_json()
    assert client.post(f"{REQUESTS}/{request['id']}/approve", json={}, headers=_person(client, admin)).status_code == 200
    with app.app_context():  # the request's approval carries to the plan's next step ...
        rollouts.step_rollout(name="m", alias="production", at_step=0, percent=50, actor="autopilot", reason="passed",
                              evidence={})
    assert client.get(ROLLOUT).get_json()["canary"]["percent"] == 50
    now = utcnow()
    protect(client, admin, approvals=1, freeze=[{"from": (now - timedelta(hours=1)).isoformat(),
                                                 "until": (now + timedelta(hours=1)).isoformat()}])
    with app.app_context(), pytest.raises(PolicyRefused) as refused:  # ... but a freeze stops the next
        rollouts.step_rollout(name="m", alias="production", at_step=1, percent=80, actor="autopilot", reason="passed",
                              evidence={})
        end_read()
    assert [item["rule"] for item in refused.value.missing] == ["freeze"]
    assert client.get(ROLLOUT).get_json()["canary"]["percent"] == 50


@pytest.mark.parametrize("change", ["movers", "lifted and set again"])
def test_a_plans_step_no_longer_carries_an_approval_the_policy_now_sets_aside(app, client, admin, ci, served, change):
    protect(client, admin, approvals=1)
    request = client.post(REQUESTS, json={"version": 2, "rollout": {"plan": HALTING_PLAN}}, headers=admin).get_json()
    assert client.post(f"{REQUESTS}/{request['id']}/approve", json={}, headers=_person(client, admin)).status_code == 200
    if change == "movers":
        protect(client, admin, approvals=1, movers={"roles": ["admin", "ci"], "tokens": ["autopilot"]})
    else:
        assert client.delete(f"{POLICY}?reason=reorganising", headers=admin).status_code == 204
        protect(client, admin, approvals=1)
    with app.app_context(), pytest.raises(PolicyRefused) as refused:
        rollouts.step_rollout(name="m", alias="production", at_step=0, percent=50, actor="autopilot", reason="passed",
                              evidence={})
    assert [item["rule"] for item in refused.value.missing] == ["approvals"]
    assert client.get(ROLLOUT).get_json()["canary"]["percent"] == 5


def test_a_plans_step_without_approval_is_refused_where_the_policy_came_after_its_start(app, client, admin, ci,
                                                                                        served):
    assert client.put(ROLLOUT, json={"canary": {"version": 2}, "plan": HALTING_PLAN}, headers=ci).status_code == 200
    protect(client, admin, approvals=1)
    with app.app_context(), pytest.raises(PolicyRefused) as refused:
        rollouts.step_rollout(name="m", alias="production", at_step=0, percent=50, actor="autopilot", reason="passed",
                              evidence={})
    assert [item["rule"] for item in refused.value.missing] == ["approvals"]
    assert client.get(ROLLOUT).get_json()["canary"]["percent"] == 5


def test_a_person_who_skips_a_step_must_be_a_mover_of_the_alias(client, admin, ci, served):
    assert client.put(ROLLOUT, json={"canary": {"version": 2}, "plan": HALTING_PLAN}, headers=ci).status_code == 200
    protect(client, admin, movers={"roles": ["admin"]})
    body = assert_problem(client.post(f"{ROLLOUT}/advance", json={}, headers=ci), 409)
    assert rules(body) == ["movers"]
    assert client.get(ROLLOUT).get_json()["canary"]["percent"] == 5
    advanced = client.post(f"{ROLLOUT}/advance", json={}, headers=admin)
    assert advanced.status_code == 200 and advanced.get_json()["canary"]["percent"] == 50, advanced.get_json()


def test_break_glass_still_moves_a_frozen_alias_for_an_admin_and_refuses_ci(client, admin, ci, served):
    protect(client, admin, approvals=2, freeze=FROZEN)
    body = {"version": 2, "reason": "v1 answers NaN for missing bmi"}
    assert_problem(client.post("/models/m/aliases/production/break-glass", json=body, headers=ci), 403)
    moved = client.post("/models/m/aliases/production/break-glass", json=body, headers=admin)
    assert moved.status_code == 200, moved.get_json()
    assert answering_versions(client, 20) == {2}


def _person(client, admin) -> dict:
    """A ci token of alice, neither requester nor uploader."""
    response = client.post("/tokens", json={"name": "alice", "role": "ci"}, headers=admin)
    return {"Authorization": f"Bearer {response.get_json()['token']}"}
