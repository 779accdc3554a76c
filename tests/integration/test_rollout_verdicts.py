"""Rollout verdicts no single caller can decide, and a controller no single plan can stall (issue 40,
items 1-5): a caller's bad rows are no error of the arm, latency is compared between batches of the
same size, a sticky key weighs as one unit however much it sends, agreement is checked on rows no
caller chose, and a plan the controller fails on halts alone while every other plan is judged."""
import json
import logging

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import update

from registry.autopilot import controller
from registry.db import db
from registry.tables import RegisteredModel, Rollout, RolloutPlan
from tests.helpers import PROBE_ROW, assert_problem, classification_data, scaled_sum, upload_ok

LOOSE_GATES = {"error_rate": {"max_increase": 0.2}, "latency": {"max_p99_ratio": 100}}
ONE_STEP = [{"percent": 50, "min_requests": 50, "max_minutes": 10}]
TWO_STEPS = [{"percent": 30, "min_requests": 50, "max_minutes": 10}, {"percent": 60, "min_requests": 50, "max_minutes": 10}]


@pytest.fixture(autouse=True)
def no_settling(monkeypatch):
    """Steps count from the first tick (one process: nothing to wait for)."""
    monkeypatch.setattr(controller, "SETTLE_SECONDS", 0.0)


def url(model: str) -> str:
    return f"/models/{model}/aliases/production/rollout"


def regressor(client, ci, name: str) -> str:
    upload_ok(client, ci, name, scaled_sum(1.0))
    upload_ok(client, ci, name, scaled_sum(1.0000001))  # answers as v1 does, to the seventh digit
    assert client.post(f"/models/{name}/versions/1/promote", json={}, headers=ci).status_code == 200
    return name


def start(client, ci, name: str, plan: dict, **body) -> dict:
    response = client.put(url(name), json={"canary": {"version": 2}, "plan": plan, **body}, headers=ci)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def tick(app) -> list[dict]:
    app.extensions["model_registry"].runtime.flush_figures()
    result = app.test_cli_runner().invoke(args=["rollouts", "tick"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def traffic(app, client, name: str, n: int, rows=None, headers=None) -> None:
    for i in range(n):
        row = rows[i % len(rows)] if rows is not None else PROBE_ROW
        response = client.post(f"/models/{name}/predict", json={"instances": [row]}, headers=headers or {})
        response.close()  # mirror runs start once the answer is sent
        assert response.status_code == 200
    assert app.extensions["model_registry"].runtime.shadows.wait_idle(30)


def history(client, name: str) -> list[dict]:
    return client.get(f"/models/{name}/history").get_json()["items"]


def store_gates(app, name: str, gates: dict) -> None:
    """Write a plan's gates as a release that checked them less (or a hand in the database) left them."""
    with app.app_context():
        rollout_id = db.session.execute(
            db.select(Rollout.id).join(RegisteredModel, RegisteredModel.id == Rollout.model_id)
            .where(RegisteredModel.name == name, Rollout.ended_at.is_(None))).scalar_one()
        db.session.execute(update(RolloutPlan).where(RolloutPlan.rollout_id == rollout_id).values(gates=gates))
        db.session.commit()


# ---- item 5: one plan cannot stall the controller ----------------------------------------------


def test_a_plan_allowing_no_rise_of_the_error_rate_at_all_is_422(client, ci):
    regressor(client, ci, "m")
    plan = {"steps": ONE_STEP, "gates": {"error_rate": {"max_increase": 0}}}
    assert_problem(client.put(url("m"), json={"canary": {"version": 2}, "plan": plan}, headers=ci), 422,
                   "max_increase: the rise of the error rate allowed, above 0")
    assert_problem(client.get(url("m")), 404)


def test_a_stored_plan_allowing_no_rise_is_judged_without_stalling_the_controller(app, client, ci):
    regressor(client, ci, "m")
    start(client, ci, "m", {"steps": ONE_STEP, "gates": LOOSE_GATES})
    store_gates(app, "m", {"error_rate": {"max_increase": 0}, "latency": {"max_p99_ratio": 100}})
    tick(app)
    traffic(app, client, "m", 120)

    (decision,) = tick(app)

    assert decision["action"] in ("wait", "halt"), decision
    gate = client.get(url("m")).get_json()["plan"]["gates"]["error_rate"]
    assert gate["settings"] == {"max_increase": 0} and gate["state"] == "waiting" and gate["needed"] > 0


def test_a_plan_the_controller_fails_on_halts_alone_logged_once_and_every_other_plan_is_judged(app, client, ci, caplog):
    for name in ("broken", "healthy"):
        regressor(client, ci, name)
        start(client, ci, name, {"steps": TWO_STEPS, "gates": LOOSE_GATES})
    store_gates(app, "broken", {"error_rate": {"max_increase": "one point"}, "latency": {"max_p99_ratio": 100}})
    tick(app)
    for name in ("broken", "healthy"):
        traffic(app, client, name, 400)

    with caplog.at_level(logging.ERROR, logger="registry.autopilot.controller"):
        decisions = {d["model"]: d for d in tick(app)}
        assert [d["model"] for d in tick(app)] == ["healthy"]  # the halted plan is not judged again

    assert decisions["healthy"]["action"] == "step", decisions
    assert decisions["broken"]["action"] == "halt"
    plan = client.get(url("broken")).get_json()["plan"]
    assert plan["state"] == "halted" and "TypeError" in plan["detail"] and "resume" in plan["detail"], plan
    assert history(client, "broken")[0]["action"] == "rollout_halt"
    assert len([r for r in caplog.records if "broken" in r.getMessage()]) == 1


# ---- issue 47 item 12: steps are numbered from 1 wherever a person reads them ------------------


def test_a_plans_step_is_numbered_from_1_in_its_figures_its_details_and_its_history(app, client, ci):
    regressor(client, ci, "m")
    started = start(client, ci, "m", {"steps": TWO_STEPS, "gates": LOOSE_GATES})
    assert started["plan"]["step"] == 1 and started["plan"]["detail"] == "step 1 started"
    tick(app)
    traffic(app, client, "m", 400)
    (decision,) = tick(app)
    assert decision["action"] == "step" and decision["step"] == 1, decision

    plan = client.get(url("m")).get_json()["plan"]
    assert plan["step"] == 2 and plan["detail"].startswith("step 1 passed every gate")
    stepped = history(client, "m")[0]
    assert stepped["action"] == "rollout_step" and stepped["details"]["step"] == 2
    assert stepped["details"]["decided_at_step"] == 1
    paused = client.post(f"{url('m')}/pause", json={"reason": "sale"}, headers=ci).get_json()
    assert paused["plan"]["step"] == 2 and history(client, "m")[0]["details"]["step"] == 2
