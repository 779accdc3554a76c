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
from registry.serving.routing import key_share
from registry.tables import RegisteredModel, Rollout, RolloutPlan
from tests.helpers import PROBE_ROW, assert_problem, classification_data, scaled_sum, upload_ok

STICKY = "X-User-Id"
LOOSE_GATES = {"error_rate": {"max_increase": 0.2}, "latency": {"max_p99_ratio": 100}}
ONE_STEP = [{"percent": 50, "min_requests": 50, "max_minutes": 10}]
# Drawn at random, 500 requests give the 30 % arm 150 (sd 10): the latency gate's 100 is five sd below.
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
    return json.loads(result.stdout)


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
        traffic(app, client, name, 500)

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
    traffic(app, client, "m", 500)
    (decision,) = tick(app)
    assert decision["action"] == "step" and decision["step"] == 1, decision

    plan = client.get(url("m")).get_json()["plan"]
    assert plan["step"] == 2 and plan["detail"].startswith("step 1 passed every gate")
    stepped = history(client, "m")[0]
    assert stepped["action"] == "rollout_step" and stepped["details"]["step"] == 2
    assert stepped["details"]["decided_at_step"] == 1
    paused = client.post(f"{url('m')}/pause", json={"reason": "sale"}, headers=ci).get_json()
    assert paused["plan"]["step"] == 2 and history(client, "m")[0]["details"]["step"] == 2


# ---- item 1: only the server's faults are errors of an arm -------------------------------------


def keys_on(arm: str, percent: float, count: int, prefix: str, name: str = "m") -> list[str]:
    """``count`` sticky keys that the stable hash sends to ``arm`` at ``percent``: what an attacker picks."""
    keys = (f"{prefix}-{i}" for i in range(1_000_000))
    on_canary = arm == "canary"
    return [key for key, _ in zip((k for k in keys if (key_share(name, "production", k) < percent) == on_canary),
                                  range(count))]


def keyed_traffic(app, client, name: str, keys, rows=None, repeat: int = 1) -> None:
    """One request per key (``repeat`` each), under the sticky header."""
    for key in keys:
        traffic(app, client, name, repeat, rows=rows, headers={STICKY: key})


def test_a_callers_malformed_rows_on_the_canary_are_refused_never_errors_of_the_canary(app, client, ci):
    regressor(client, ci, "m")
    start(client, ci, "m", {"steps": ONE_STEP, "gates": {"error_rate": {"max_increase": 0.01}, "latency": None}},
          sticky_header=STICKY)
    tick(app)
    (attacker,) = keys_on("canary", 50, 1, "attacker")
    for _ in range(80):  # a row that does not fit the signature, under a key that lands on the canary
        refused = client.post("/models/m/predict", json={"instances": [["x", "y"]]}, headers={STICKY: attacker})
        assert refused.status_code == 422
    keyed_traffic(app, client, "m", [f"user-{i}" for i in range(300)])

    (decision,) = tick(app)

    assert decision["action"] != "abort", decision
    canary = client.get(url("m")).get_json()["canary"]
    assert canary["errors"] == 0 and canary["refused"] == 80 and canary["requests"] > 100
    assert client.get(url("m")).get_json()["plan"]["gates"]["error_rate"]["state"] in ("pass", "waiting")


# ---- item 2: latency like for like ---------------------------------------------------------------


def test_large_batches_sent_to_the_canary_do_not_fail_its_latency_gate(app, client, ci):
    regressor(client, ci, "m")
    start(client, ci, "m", {"steps": ONE_STEP, "gates": {"error_rate": None, "latency": {"max_p99_ratio": 1.5}},
                            "on_success": "halt"}, sticky_header=STICKY)
    tick(app)
    big = np.random.default_rng(0).normal(size=(5000, 3)).tolist()
    for key in keys_on("canary", 50, 6, "batcher"):  # a few keys on the canary, each sending large batches
        for _ in range(10):
            assert client.post("/models/m/predict", json={"instances": big}, headers={STICKY: key}).status_code == 200
    keyed_traffic(app, client, "m", [f"user-{i}" for i in range(400)])

    decisions = tick(app)

    assert decisions[0]["action"] in ("wait", "halt") and "failed" not in decisions[0]["detail"], decisions
    gate = client.get(url("m")).get_json()["plan"]["gates"]["latency"]
    assert gate["state"] == "pass" and set(gate["by_rows"]) == {"1"}, gate  # batches compared with batches alike
    figures = client.get(url("m")).get_json()["plan"]["figures"]
    assert set(figures["canary"]["latency_by_rows"]) == {"1", "1001+"}


def test_the_latency_gates_p99_is_the_figures_p99_on_the_same_get(app, client, ci):
    regressor(client, ci, "m")
    start(client, ci, "m", {"steps": [{"percent": 50, "min_requests": 100, "max_minutes": 10}],
                            "gates": {"error_rate": None, "latency": {"max_p99_ratio": 100}}, "on_success": "halt"})
    tick(app)
    traffic(app, client, "m", 300)
    tick(app)

    body = client.get(url("m")).get_json()
    gate, figures = body["plan"]["gates"]["latency"], body["plan"]["figures"]
    for arm in ("canary", "primary"):
        assert gate["by_rows"]["1"][f"{arm}_p99_ms"] == figures[arm]["latency_by_rows"]["1"]["p99_ms"]
        assert figures[arm]["latency_by_rows"]["1"]["p99_ms"] == figures[arm]["p99_ms"]  # single rows only
        assert f"p99 canary {figures['canary']['p99_ms']:g} ms" in gate["detail"]


# ---- item 3: with a sticky header the unit is the key ------------------------------------------


def test_a_flood_from_a_few_keys_does_not_carry_a_step_that_needs_more_keys(app, client, ci):
    regressor(client, ci, "m")
    start(client, ci, "m", {"steps": ONE_STEP, "gates": LOOSE_GATES}, sticky_header=STICKY)
    tick(app)
    keyed_traffic(app, client, "m", [f"user-{i}" for i in range(20)])
    for arm in ("canary", "primary"):  # one key on each arm sends far more than the step's 50 requests
        keyed_traffic(app, client, "m", keys_on(arm, 50, 1, "flood"), repeat=300)

    (decision,) = tick(app)

    assert decision["action"] == "wait", decision
    body = client.get(url("m")).get_json()
    assert body["canary"]["requests"] > 300 and body["canary"]["keys"] < 20
    figures = body["plan"]["figures"]["canary"]
    assert figures["keys"] == body["canary"]["keys"] and figures["weighed_requests"] < figures["requests"]
    assert figures["weighed_requests"] <= 10 * figures["keys"]


def test_keys_chosen_to_land_on_the_canary_halt_the_plan_on_the_split_of_keys(app, client, ci):
    regressor(client, ci, "m")
    start(client, ci, "m", {"steps": [{"percent": 20, "min_requests": 50, "max_minutes": 10}], "gates": LOOSE_GATES},
          sticky_header=STICKY)
    tick(app)
    keyed_traffic(app, client, "m", [f"user-{i}" for i in range(200)])
    keyed_traffic(app, client, "m", keys_on("canary", 20, 200, "chosen"))

    (decision,) = tick(app)

    assert decision["action"] == "halt" and "split of keys does not match" in decision["detail"], decision
    plan = client.get(url("m")).get_json()["plan"]
    assert plan["gates"]["sample_ratio"]["state"] == "fail" and plan["gates"]["sample_ratio"]["seen"] >= 390
    assert client.get("/models/m/aliases").get_json()["production"] == 1


def test_honest_keys_walk_a_sticky_plan_through_to_promotion(app, client, ci):
    regressor(client, ci, "m")
    start(client, ci, "m", {"steps": ONE_STEP, "gates": LOOSE_GATES}, sticky_header=STICKY)
    tick(app)
    keyed_traffic(app, client, "m", [f"user-{i}" for i in range(300)], repeat=2)

    (decision,) = tick(app)

    assert decision["action"] == "promote", decision
    promoted = history(client, "m")[0]["details"]
    assert promoted["gates"]["sample_ratio"]["state"] == "pass" and "keys" in promoted["gates"]["sample_ratio"]["detail"]
    assert promoted["step_figures"]["canary"]["keys"] >= 50


def test_a_flood_of_rows_one_key_chose_does_not_carry_the_quality_gate(build_app, ci):
    """A canary half again the truth on honest rows; one key on the canary sends a thousand rows it
    answers exactly, all labelled. Weighed as requests, they pull its MAE within the allowed drop;
    weighed as a key, they are ten rows, and the canary is aborted on what honest keys saw."""
    app = build_app(PREDICTION_LOG_SAMPLE=1.0)
    client = app.test_client()
    upload_ok(client, ci, "m", scaled_sum(1.0))
    upload_ok(client, ci, "m", scaled_sum(1.5))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    start(client, ci, "m", {"steps": ONE_STEP, "gates": {**LOOSE_GATES, "quality": {"max_drop": 0.2}}},
          sticky_header=STICKY)
    tick(app)
    rows = np.random.default_rng(3).normal(size=(300, 3)).tolist()
    sent = [(f"honest-{i}", f"user-{i}", row) for i, row in enumerate(rows)]
    (attacker,) = keys_on("canary", 50, 1, "attacker")
    sent += [(f"flood-{i}", attacker, [0.0, 0.0, 0.0]) for i in range(1000)]  # both versions answer 0: the truth
    for request_id, key, row in sent:
        response = client.post("/models/m/predict", json={"instances": [row]},
                               headers={STICKY: key, "X-Request-ID": request_id})
        assert response.status_code == 200
    assert app.extensions["model_registry"].prediction_log.flush()
    truth = [{"request_id": request_id, "label": sum(row)} for request_id, _, row in sent]  # what v1 answers
    for start_at in range(0, len(truth), 500):
        labelled = client.post("/models/m/feedback", json={"items": truth[start_at:start_at + 500]}, headers=ci)
        assert labelled.get_json()["applied"] == len(truth[start_at:start_at + 500]), labelled.get_json()

    (decision,) = tick(app)

    assert decision["action"] == "abort" and "quality gate failed" in decision["detail"], decision
    gate = history(client, "m")[0]["details"]["gates"]["quality"]
    assert gate["state"] == "fail" and gate["value"] > 0.2, gate
    canary_rows = client.get("/models/m/versions/2/monitoring?window=1h").get_json()["routes"]["canary"]["labelled"]
    assert canary_rows > 1000  # every answer was logged and labelled; the gate weighed the key's first ten


# ---- item 4: agreement on rows no caller chose ---------------------------------------------------


def test_a_canary_that_disagrees_is_aborted_on_its_reference_rows_however_the_live_rows_were_chosen(app, client, ci):
    X, y = classification_data()
    production = LogisticRegression().fit(X, y)
    candidate = LogisticRegression().fit(X, np.random.default_rng(0).permutation(y))  # shuffled labels
    upload_ok(client, ci, "m", production)
    upload_ok(client, ci, "m", candidate)
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    reference = client.put("/models/m/versions/2/reference", json={"source": "training", "instances": X.tolist()},
                           headers=ci)
    assert reference.status_code == 200, reference.get_json()
    start(client, ci, "m", {"steps": ONE_STEP, "gates": {**LOOSE_GATES, "agreement": {"min": 0.9}}})
    tick(app)
    alike = X[production.predict(X) == candidate.predict(X)]  # only rows on which both answer alike
    traffic(app, client, "m", 300, rows=alike.tolist())

    (decision,) = tick(app)

    assert decision["action"] == "abort" and "agreement gate failed" in decision["detail"], decision
    assert "on rows no caller chose" in decision["detail"]
    gate = history(client, "m")[0]["details"]["gates"]["agreement"]
    assert gate["state"] == "fail" and gate["value"] < 0.9


def test_the_dashboard_says_how_many_keys_the_figures_rest_on(app, client, ci):
    regressor(client, ci, "m")
    start(client, ci, "m", {"steps": [{"percent": 50, "min_requests": 500, "max_minutes": 10}], "gates": LOOSE_GATES},
          sticky_header=STICKY)
    tick(app)
    keyed_traffic(app, client, "m", [f"user-{i}" for i in range(30)], repeat=3)
    tick(app)

    body = client.get(url("m")).get_json()
    page = " ".join(client.get("/ui/models/m/aliases/production/live").get_data(as_text=True).split())
    assert "≥ 500 keys per arm" in page
    keys = body["plan"]["figures"]["canary"]["keys"]
    assert keys == body["canary"]["keys"] and f"from {keys} keys" in page
    assert f"data-keys>{body['primary']['keys']}</td>" in page
