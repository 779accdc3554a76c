"""Rollout plans through the API and the controller's ticks: a healthy canary walks every step and
is promoted, a disagreeing one is aborted, a split off its share halts, a step out of time halts,
a person's pause, resume, advance and abort win; every decision is in the history with its figures."""
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from registry.autopilot import controller
from registry.db import db
from registry.errors import Conflict, RolloutNotFound
from registry.events.tables import WebhookEvent
from registry.tables import Rollout
from tests.helpers import PROBE_ROW, assert_problem, classification_data, scaled_sum, upload_ok

URL = "/models/m/aliases/production/rollout"
PUBLIC_URL = "https://93.184.215.14/hooks/registry"  # a literal public address: no DNS needed
# The split is drawn at random: the latency gate's 100 requests an arm (a p99 needs them) is five
# standard deviations below what 500 or 400 requests give the smaller arm of either step, so no test
# waits on a short arm by chance.
FAST_STEPS = [{"percent": 30, "min_requests": 50, "max_minutes": 10}, {"percent": 60, "min_requests": 50, "max_minutes": 10}]
LOOSE_GATES = {"error_rate": {"max_increase": 0.2}, "latency": {"max_p99_ratio": 100}}


@pytest.fixture
def app(build_app):
    """Every answer logged, for the quality gate's labels."""
    return build_app(PREDICTION_LOG_SAMPLE=1.0)


@pytest.fixture(autouse=True)
def no_settling(monkeypatch):
    """Steps count from the first tick (one process: nothing to wait for)."""
    monkeypatch.setattr(controller, "SETTLE_SECONDS", 0.0)


@pytest.fixture
def regressor(client, ci, admin):
    upload_ok(client, ci, "m", scaled_sum(1.0))
    upload_ok(client, ci, "m", scaled_sum(1.0000001))  # answers as v1 does, to the seventh digit
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["*"]}, headers=admin).status_code == 201
    return "m"


def tick(app) -> list[dict]:
    app.extensions["model_registry"].runtime.flush_figures()
    result = app.test_cli_runner().invoke(args=["rollouts", "tick"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def traffic(app, client, n: int, rows=None) -> None:
    for i in range(n):
        row = rows[i % len(rows)] if rows is not None else PROBE_ROW
        response = client.post("/models/m/predict", json={"instances": [row]})
        response.close()  # mirror runs start once the answer is sent
        assert response.status_code == 200
    assert app.extensions["model_registry"].runtime.shadows.wait_idle(30)


def running_rollout_id(app) -> int:
    with app.app_context():
        return db.session.execute(db.select(Rollout.id).where(Rollout.ended_at.is_(None))).scalar_one()


def history(client) -> list[dict]:
    return client.get("/models/m/history").get_json()["items"]


def webhook_types(app) -> list[str]:
    with app.app_context():
        return [row for row in db.session.execute(db.select(WebhookEvent.type).order_by(WebhookEvent.id)).scalars()]


def test_a_healthy_canary_walks_every_step_and_is_promoted(app, client, regressor, ci):
    started = client.put(URL, json={"canary": {"version": 2}, "plan": {"steps": FAST_STEPS, "gates": LOOSE_GATES},
                                    "reason": "v2 on autopilot"}, headers=ci)
    assert started.status_code == 200, started.get_json()
    body = started.get_json()
    assert body["canary"]["percent"] == 30 and body["plan"]["step"] == 1 and body["plan"]["state"] == "running"
    assert set(body["plan"]["gates"]) == {"error_rate", "latency", "sample_ratio"}  # no agreement default for regressors
    assert all(gate["state"] == "waiting" for gate in body["plan"]["gates"].values())

    assert [d["action"] for d in tick(app)] == ["wait"]  # the step settles: its figures count from now
    traffic(app, client, 500)
    (decision,) = tick(app)
    assert decision["action"] == "step", decision
    assert client.get(URL).get_json()["canary"]["percent"] == 60
    assert client.get(URL).get_json()["plan"]["step"] == 2

    tick(app)
    traffic(app, client, 400)
    (decision,) = tick(app)
    assert decision["action"] == "promote", decision
    assert client.get("/models/m/aliases").get_json()["production"] == 2
    assert_problem(client.get(URL), 404)

    events = history(client)
    assert [e["action"] for e in events[:3]] == ["rollout_promote", "rollout_step", "rollout_start"]
    promoted, stepped = events[0], events[1]
    assert promoted["actor"] == "autopilot" and promoted["details"]["gates"]["error_rate"]["state"] == "pass"
    assert stepped["details"]["step"] == 2 and stepped["details"]["step_figures"]["canary"]["requests"] >= 50
    assert {"rollout.started", "rollout.step", "rollout.completed", "alias.moved"} <= set(webhook_types(app))


def test_a_canary_that_disagrees_with_the_primary_is_aborted_by_the_agreement_gate(app, client, ci):
    X, y = classification_data()
    upload_ok(client, ci, "m", LogisticRegression().fit(X, y))
    upload_ok(client, ci, "m", LogisticRegression().fit(X, np.random.default_rng(0).permutation(y)))  # shuffled labels
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    plan = {"steps": [{"percent": 50, "min_requests": 100, "max_minutes": 10}], "gates": LOOSE_GATES}
    assert client.put(URL, json={"canary": {"version": 2}, "plan": plan}, headers=ci).status_code == 200
    assert client.get(URL).get_json()["plan"]["gates"]["agreement"]["settings"] == {"min": 0.9}  # the default

    tick(app)
    traffic(app, client, 200, rows=X[:200].tolist())
    (decision,) = tick(app)

    assert decision["action"] == "abort" and "agreement gate failed" in decision["detail"], decision
    assert client.get("/models/m/aliases").get_json()["production"] == 1
    aborted = history(client)[0]
    assert aborted["action"] == "rollout_abort" and aborted["actor"] == "autopilot"
    assert aborted["details"]["gates"]["agreement"]["state"] == "fail"
    assert aborted["details"]["step_figures"]["canary"]["compared_rows"] > 0


def test_waiting_gates_say_how_many_samples_they_need_and_how_long_that_will_take(app, client, regressor, ci):
    plan = {"steps": [{"percent": 30, "min_requests": 4000, "max_minutes": 10}], "gates": LOOSE_GATES}
    client.put(URL, json={"canary": {"version": 2}, "plan": plan}, headers=ci)
    tick(app)
    traffic(app, client, 200)
    assert tick(app)[0]["action"] == "wait"
    gate = client.get(URL).get_json()["plan"]["gates"]["error_rate"]
    assert gate["state"] == "waiting" and gate["needed"] >= 4000 > gate["seen"] > 0
    assert gate["eta_s"] > 0


def test_a_split_that_does_not_match_its_share_halts_the_plan(app, client, regressor, ci):
    client.put(URL, json={"canary": {"version": 2}, "plan": {"steps": FAST_STEPS, "gates": LOOSE_GATES}}, headers=ci)
    tick(app)
    figures, rollout_id = app.extensions["model_registry"].runtime.figures, running_rollout_id(app)
    for _ in range(300):  # the canary counted far more than its 30 % (as a worker routing by a stale share would)
        figures.answered((rollout_id, "canary", 2), 0.001, ok=True)
    traffic(app, client, 100)
    (decision,) = tick(app)

    assert decision["action"] == "halt" and "does not match its share" in decision["detail"], decision
    plan = client.get(URL).get_json()["plan"]
    assert plan["state"] == "halted" and plan["gates"]["sample_ratio"]["state"] == "fail"
    assert client.get(URL).get_json()["canary"]["percent"] == 30  # the split stays as it was: a person decides
    assert tick(app) == []  # a halted plan is not judged again


def test_a_step_that_runs_out_of_time_before_its_gates_decide_halts(app, client, regressor, ci):
    plan = {"steps": [{"percent": 20, "min_requests": 100000, "max_minutes": 0.0001}], "gates": LOOSE_GATES}
    assert client.put(URL, json={"canary": {"version": 2}, "plan": plan}, headers=ci).status_code == 200
    tick(app)
    traffic(app, client, 20)
    (decision,) = tick(app)
    assert decision["action"] == "halt" and "ran out of its" in decision["detail"]
    assert history(client)[0]["action"] == "rollout_halt"


def test_a_person_pauses_resumes_and_advances_and_the_controller_respects_it(app, client, regressor, ci):
    client.put(URL, json={"canary": {"version": 2}, "plan": {"steps": FAST_STEPS, "gates": LOOSE_GATES}}, headers=ci)
    paused = client.post(f"{URL}/pause", json={"reason": "a big sale today"}, headers=ci)
    assert paused.status_code == 200 and paused.get_json()["plan"]["state"] == "paused"
    traffic(app, client, 400)
    assert tick(app) == []  # paused: nothing judged
    assert_problem(client.post(f"{URL}/pause", json={}, headers=ci), 409, "not running")

    resumed = client.post(f"{URL}/resume", json={"reason": "sale over"}, headers=ci).get_json()
    assert resumed["plan"]["state"] == "running" and resumed["plan"]["step"] == 1
    advanced = client.post(f"{URL}/advance", json={"reason": "skip: v2 ran elsewhere"}, headers=ci).get_json()
    assert advanced["plan"]["step"] == 2 and advanced["canary"]["percent"] == 60
    done = client.post(f"{URL}/advance", json={"reason": "enough"}, headers=ci)
    assert done.status_code == 200 and done.get_json()["plan"]["state"] == "promoted"
    assert client.get("/models/m/aliases").get_json()["production"] == 2
    actions = [e["action"] for e in history(client)[:5]]
    assert actions == ["rollout_promote", "rollout_step", "rollout_resume", "rollout_pause", "rollout_start"]


def test_a_persons_abort_during_a_step_wins_over_the_controllers_decision(app, client, regressor, ci):
    client.put(URL, json={"canary": {"version": 2}, "plan": {"steps": FAST_STEPS, "gates": LOOSE_GATES}}, headers=ci)
    tick(app)
    traffic(app, client, 500)  # at 30 %: the latency gate's 100 a side five standard deviations away
    app.extensions["model_registry"].runtime.flush_figures()
    with app.app_context():
        view = controller.read_step("m", "production")  # the controller has read the step ...
    assert client.delete(URL, json={"reason": "not today"}, headers=ci).status_code == 200  # ... a person aborts
    with app.app_context(), pytest.raises((Conflict, RolloutNotFound)):
        controller.judge(app.extensions["model_registry"].runtime, view)  # its step passed, but it does nothing
    assert client.get("/models/m/aliases").get_json()["production"] == 1
    assert [e["action"] for e in history(client)[:2]] == ["rollout_abort", "rollout_start"]
    assert history(client)[0]["actor"] != "autopilot"


def test_a_manual_change_drops_the_plan(client, regressor, ci):
    client.put(URL, json={"canary": {"version": 2}, "plan": {"steps": FAST_STEPS}}, headers=ci)
    changed = client.put(URL, json={"canary": {"version": 2, "percent": 10}}, headers=ci).get_json()
    assert changed["canary"]["percent"] == 10 and changed["plan"] is None
    assert_problem(client.post(f"{URL}/pause", json={}, headers=ci), 409, "has no plan")


@pytest.mark.parametrize("body, words", [
    ({"canary": {"version": 2, "percent": 5}, "plan": {}}, "leave percent out"),
    ({"canary": {"version": 2}}, "give a plan"),
    ({"shadow": {"version": 2, "percent": 5}, "plan": {}}, "give the canary"),
    ({"canary": {"version": 2}, "plan": {"steps": []}}, "a list of 1 to 10 steps"),
    ({"canary": {"version": 2}, "plan": {"steps": [{"percent": 50}, {"percent": 20}]}}, "more than the one before"),
    ({"canary": {"version": 2}, "plan": {"steps": [{"percent": 100}]}}, "below 100"),
    ({"canary": {"version": 2}, "plan": {"steps": [{"percent": 5, "min_requests": 0}]}}, "min_requests"),
    ({"canary": {"version": 2}, "plan": {"steps": [{"percent": 5, "max_minutes": -1}]}}, "max_minutes"),
    ({"canary": {"version": 2}, "plan": {"gates": {"speed": {}}}}, "unknown gate 'speed'"),
    ({"canary": {"version": 2}, "plan": {"gates": {"agreement": {"min": 0.9}}}}, "max_mean_abs_diff"),
    ({"canary": {"version": 2}, "plan": {"gates": {"latency": {"max_p99_ratio": 0.5}}}}, "from 1 to 100"),
    ({"canary": {"version": 2}, "plan": {"gates": {"error_rate": {"max_increase": "1%"}}}}, "max_increase"),
    ({"canary": {"version": 2}, "plan": {"on_success": "celebrate"}}, "promote, halt"),
    ({"canary": {"version": 2}, "plan": {"step": []}}, "unknown field 'step'"),
    ({"canary": {"version": 9}, "plan": {}}, "no version 9"),
])
def test_a_plan_that_is_not_valid_is_422_naming_the_field(client, regressor, ci, body, words):
    assert_problem(client.put(URL, json=body, headers=ci), 422, words)
    assert_problem(client.get(URL), 404)  # nothing started


def test_a_plan_left_empty_gets_the_defaults(client, regressor, ci):
    plan = client.put(URL, json={"canary": {"version": 2}, "plan": {}}, headers=ci).get_json()["plan"]
    assert [step["percent"] for step in plan["steps"]] == [5, 25, 50] and plan["on_success"] == "promote"
    assert plan["gates"]["error_rate"]["settings"] == {"max_increase": 0.01}
    assert plan["gates"]["latency"]["settings"] == {"max_p99_ratio": 1.5}


def test_a_canary_whose_live_quality_is_worse_is_aborted_by_the_quality_gate(app, client, ci):
    upload_ok(client, ci, "m", scaled_sum(1.0))
    upload_ok(client, ci, "m", scaled_sum(1.5))  # answers half as much again as the truth
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    plan = {"steps": FAST_STEPS, "gates": {**LOOSE_GATES, "quality": {"max_drop": 0.1}}}
    assert client.put(URL, json={"canary": {"version": 2}, "plan": plan}, headers=ci).status_code == 200
    tick(app)
    rows = np.random.default_rng(2).normal(size=(500, 3)).tolist()
    for i, row in enumerate(rows):
        assert client.post("/models/m/predict", json={"instances": [row]}, headers={"X-Request-ID": f"q-{i}"}).status_code == 200
    assert app.extensions["model_registry"].prediction_log.flush()
    truth = [{"request_id": f"q-{i}", "label": sum(row)} for i, row in enumerate(rows)]  # what v1 answers
    assert client.post("/models/m/feedback", json={"items": truth}, headers=ci).get_json()["applied"] == 500

    (decision,) = tick(app)

    assert decision["action"] == "abort" and "quality gate failed" in decision["detail"], decision
    gate = history(client)[0]["details"]["gates"]["quality"]
    assert gate["state"] == "fail" and gate["value"] > 0.1  # the canary's MAE above the primary's by more than allowed


def test_a_plan_whose_alias_is_protected_meanwhile_halts_at_its_end_and_an_approval_promotes(app, client, regressor,
                                                                                             ci, admin):
    plan = {"steps": [{"percent": 50, "min_requests": 50, "max_minutes": 10}], "gates": LOOSE_GATES}
    assert client.put(URL, json={"canary": {"version": 2}, "plan": plan}, headers=ci).status_code == 200
    assert client.put("/models/m/aliases/production/policy", json={"approvals": 1}, headers=admin).status_code == 200
    tick(app)
    traffic(app, client, 500)
    (decision,) = tick(app)
    assert decision["action"] == "halt" and "approval" in decision["detail"], decision
    assert client.get("/models/m/aliases").get_json()["production"] == 1
    assert client.get(URL).get_json()["plan"]["state"] == "halted"
    assert tick(app) == []  # halted: not judged again, so not refused again

    request = client.post("/models/m/aliases/production/requests", json={"version": 2}, headers=ci).get_json()
    approved = client.post(f"/models/m/aliases/production/requests/{request['id']}/approve", json={}, headers=admin)
    assert approved.status_code == 200 and approved.get_json()["state"] == "done", approved.get_json()
    assert client.get("/models/m/aliases").get_json()["production"] == 2
    assert_problem(client.get(URL), 404)  # the approved promote ended the rollout, as any promote does


def test_a_policy_asking_for_a_rollout_counts_a_plan_walked_to_its_end(app, client, regressor, ci, admin):
    policy = {"approvals": 1, "require": {"rollout": True}}
    assert client.put("/models/m/aliases/production/policy", json=policy, headers=admin).status_code == 200
    body = assert_problem(client.post("/models/m/versions/2/promote", json={}, headers=ci), 409)
    assert [item["rule"] for item in body["missing"]] == ["rollout", "approvals"]

    plan = {"steps": [{"percent": 50, "min_requests": 50, "max_minutes": 10}], "gates": LOOSE_GATES,
            "on_success": "halt"}
    refused = assert_problem(client.put(URL, json={"canary": {"version": 2}, "plan": plan}, headers=ci), 409)
    assert [item["rule"] for item in refused["missing"]] == ["approvals"]  # a canary answers callers: approved first
    asked = client.post("/models/m/aliases/production/requests", json={"version": 2, "rollout": {"plan": plan}},
                        headers=ci).get_json()
    started = client.post(f"/models/m/aliases/production/requests/{asked['id']}/approve", json={}, headers=admin)
    assert started.get_json()["state"] == "done" and started.get_json()["rollout"] == {"plan": plan, "percent": None,
                                                                                       "sticky_header": None}
    assert client.get(URL).get_json()["canary"]["percent"] == 50
    assert client.get("/models/m/aliases").get_json()["production"] == 1
    tick(app)
    traffic(app, client, 500)
    (decision,) = tick(app)
    assert decision["action"] == "halt" and "every step passed" in decision["detail"], decision

    request = client.post("/models/m/aliases/production/requests", json={"version": 2}, headers=ci).get_json()
    assert [item["rule"] for item in request["missing"]] == ["approvals"]
    approved = client.post(f"/models/m/aliases/production/requests/{request['id']}/approve", json={}, headers=admin)
    assert approved.get_json()["state"] == "done", approved.get_json()
    assert client.get("/models/m/aliases").get_json()["production"] == 2
