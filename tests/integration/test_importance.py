"""Global importance and attribution drift (issue 43): a version's mean |attribution| per input column over
a window of its logged explanations; during a rollout the canary's beside the primary's, with the total
variation distance between their shares. Shown only to a token with the right ``read_inputs``; the
monitoring sweep sends ``model.attribution_drift`` once when a canary leans on other columns than its
primary, never for an equal one."""
import json

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sqlalchemy import select

from registry.db import db
from registry.events.tables import WebhookEvent
from tests.helpers import assert_problem, upload_ok

RNG = np.random.default_rng(11)
X = RNG.normal(size=(300, 3))
NAMES = ["x0", "x1", "x2"]
IMPORTANCE = "/models/m/versions/{}/importance?window=1h"


def uses(column: int, seed: int = 0) -> LinearRegression:
    """A regressor whose answer moves with one column only (its fit on noise of its own)."""
    noise = np.random.default_rng(seed).normal(scale=0.01, size=len(X))
    return LinearRegression().fit(X, 3 * X[:, column] + noise)


@pytest.fixture
def app(build_app):
    return build_app(PREDICTION_LOG_SAMPLE=1.0, ATTRIBUTION_MIN_ROWS=20, MONITOR_WINDOW="1h")


@pytest.fixture
def served(client, ci):
    upload_ok(client, ci, "m", uses(0), {"feature_names": NAMES})
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert client.patch("/models/m", json={"prediction_log": {"explain": 1.0}}, headers=ci).status_code == 200
    return "m"


def answer(app, client, count: int, prefix: str) -> None:
    rows = np.random.default_rng(len(prefix)).normal(size=(count, 3))
    for i, row in enumerate(rows):
        response = client.post("/models/m/production/predict", json={"instances": [row.tolist()]},
                               headers={"X-Request-ID": f"{prefix}-{i}"})
        assert response.status_code == 200, response.get_json()
    assert app.extensions["model_registry"].prediction_log.flush(timeout=60)


def read(client, headers, version=1) -> dict:
    """The importance answer, with ``mean_abs`` and ``shares`` as {column: figure} beside its ranked ``columns``."""
    response = client.get(IMPORTANCE.format(version), headers=headers)
    assert response.status_code == 200, response.get_json()
    found = response.get_json()
    for part in [found] + [arm for rollout in found["rollouts"] for arm in (rollout["primary"], rollout["canary"])]:
        part["mean_abs"] = {column["name"]: column["mean_abs"] for column in part["columns"]}
        part["shares"] = {column["name"]: column["share"] for column in part["columns"]}
        part["ranked"] = [column["name"] for column in part["columns"]]
    return found


def canary(client, ci, model) -> None:
    upload_ok(client, ci, "m", model, {"feature_names": NAMES})
    started = client.put("/models/m/aliases/production/rollout", json={"canary": {"version": 2, "percent": 50}},
                         headers=ci)
    assert started.status_code == 200, started.get_json()


def test_a_versions_importance_is_its_mean_absolute_attribution_per_column(app, client, served, analyst):
    answer(app, client, 30, "a")

    found = read(client, analyst)

    assert (found["model"], found["version"], found["window"], found["space"]) == ("m", 1, "1h", "prediction")
    assert (found["requests"], found["rows"], found["route"], found["rollouts"]) == (30, 30, None, [])
    assert found["ranked"][0] == "x0"  # the only column the answers move with
    assert found["mean_abs"]["x0"] > 1 and found["mean_abs"]["x1"] < 0.05 and found["mean_abs"]["x2"] < 0.05
    assert found["shares"]["x0"] == pytest.approx(1, abs=0.02) and sum(found["shares"].values()) == pytest.approx(1)


def test_a_classifiers_values_per_class_are_summed_over_its_classes(app, client, ci, analyst):
    forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, (X[:, 1] > 0).astype(int))
    upload_ok(client, ci, "m", forest, {"feature_names": NAMES})
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert client.patch("/models/m", json={"prediction_log": {"explain": 1.0}}, headers=ci).status_code == 200
    answer(app, client, 10, "c")
    logged = client.get("/models/m/predictions?limit=1000", headers=analyst).get_json()["items"]
    by_row = [np.abs(np.asarray(item["explanations"]["values"])).sum(axis=2) for item in logged]

    found = read(client, analyst)

    assert found["space"] == "probability" and found["ranked"][0] == "x1"
    expected = np.concatenate(by_row).mean(axis=0)
    assert [found["mean_abs"][name] for name in NAMES] == pytest.approx(expected.tolist())


def test_without_explanations_the_importance_is_empty(app, client, served, ci, analyst):
    assert client.patch("/models/m", json={"prediction_log": {"explain": 0}}, headers=ci).status_code == 200
    answer(app, client, 5, "none")
    found = read(client, analyst)
    assert (found["requests"], found["rows"], found["space"], found["columns"]) == (0, 0, None, [])


@pytest.mark.parametrize("model, drifted", [(uses(2), True), (uses(0, seed=1), False)], ids=["other-column", "alike"])
def test_during_a_rollout_the_canarys_importance_stands_beside_the_primarys(app, client, served, ci, analyst,
                                                                             model, drifted):
    canary(client, ci, model)
    answer(app, client, 120, "r")

    for version in (1, 2):
        (rollout,) = read(client, analyst, version)["rollouts"]
        assert rollout["alias"] == "production" and (rollout["threshold"], rollout["min_rows"]) == (0.2, 20)
        assert (rollout["primary"]["version"], rollout["primary"]["route"]) == (1, "primary")
        assert (rollout["canary"]["version"], rollout["canary"]["route"]) == (2, "canary")
        assert min(rollout["primary"]["rows"], rollout["canary"]["rows"]) >= 20
        assert rollout["drifted"] is drifted
        if drifted:
            assert rollout["distance"] == pytest.approx(1, abs=0.02) and sorted(rollout["moved"]) == ["x0", "x2"]
        else:
            assert rollout["distance"] < 0.02 and rollout["moved"] == []


def test_the_distance_waits_for_enough_explained_rows_on_each_arm(app, client, served, ci, analyst):
    canary(client, ci, uses(2))
    answer(app, client, 10, "few")
    (rollout,) = read(client, analyst)["rollouts"]
    assert rollout["distance"] is None and rollout["drifted"] is False


@pytest.mark.parametrize("caller, status", [
    ("anonymous", 401), ("bad token", 401), ("reader", 403), ("feedback", 403), ("ci", 403),
    ("analyst scoped to other models", 403), ("analyst scoped without read_inputs", 403),
])
def test_the_importance_is_refused_to_callers_without_read_inputs(app, client, served, tokens, caller, status):
    answer(app, client, 3, "x")
    headers = {
        "anonymous": lambda: {}, "bad token": lambda: {"Authorization": "Bearer nope"},
        "reader": lambda: tokens("r", "reader"), "feedback": lambda: tokens("f", "feedback"),
        "ci": lambda: tokens("c", "ci"),
        "analyst scoped to other models": lambda: tokens("s1", "analyst", [{"models": ["other-*"],
                                                                          "rights": ["read", "read_inputs"]}]),
        "analyst scoped without read_inputs": lambda: tokens("s2", "analyst", [{"models": ["m"], "rights": ["read"]}]),
    }[caller]()
    refused = client.get(IMPORTANCE.format(1), headers=headers)
    assert_problem(refused, status)
    assert "x0" not in refused.get_data(as_text=True)


def test_an_analyst_scoped_to_the_model_reads_it(app, client, served, tokens):
    answer(app, client, 3, "y")
    scoped = tokens("s", "analyst", [{"models": ["m"], "rights": ["read", "read_inputs"]}])
    assert read(client, scoped)["rows"] == 3


def test_an_unknown_version_is_404_and_a_bad_window_422(client, served, analyst):
    assert_problem(client.get(IMPORTANCE.format(9), headers=analyst), 404)
    assert_problem(client.get("/models/m/versions/1/importance?window=forever", headers=analyst), 422, "window")


PUBLIC_URL = "https://93.184.215.14/hooks/registry"  # a literal public address: no DNS needed


def sweep(app) -> dict:
    result = app.test_cli_runner().invoke(args=["monitoring", "sweep"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def attribution_events(app) -> list[dict]:
    with app.app_context():
        bodies = db.session.execute(select(WebhookEvent.body).where(WebhookEvent.type == "model.attribution_drift")
                                    .order_by(WebhookEvent.id)).scalars().all()
    return [json.loads(body)["data"] for body in bodies]


@pytest.fixture
def subscribed(client, admin):
    created = client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["model.attribution_drift"]}, headers=admin)
    assert created.status_code == 201, created.get_json()


def test_the_sweep_alerts_once_when_a_canary_leans_on_another_column(app, client, served, ci, subscribed):
    canary(client, ci, uses(2))
    answer(app, client, 120, "s")

    (alert,) = sweep(app)["attribution_alerts"]

    assert (alert["model"], alert["alias"], alert["primary"], alert["canary"], alert["window"]) == (
        "m", "production", 1, 2, "1h")
    assert alert["distance"] == pytest.approx(1, abs=0.02) and alert["threshold"] == 0.2
    assert min(alert["rows"].values()) >= 20 and sorted(alert["moved"]) == ["x0", "x2"]
    assert attribution_events(app) == [alert]  # the webhook event carries the same figures, by column name only
    assert "mean_abs" not in json.dumps(alert) and "share" not in json.dumps(alert)

    answer(app, client, 20, "more")
    assert sweep(app)["attribution_alerts"] == []  # still apart, not newly: no second alert
    assert len(attribution_events(app)) == 1


def test_an_equal_canary_never_alerts(app, client, served, ci, subscribed):
    canary(client, ci, uses(0, seed=1))
    answer(app, client, 120, "e")
    assert sweep(app)["attribution_alerts"] == [] and attribution_events(app) == []


def test_no_alert_before_each_arm_has_its_minimum_of_explained_rows(app, client, served, ci, subscribed):
    canary(client, ci, uses(2))
    answer(app, client, 10, "few")
    assert sweep(app)["attribution_alerts"] == []
    answer(app, client, 110, "enough")
    assert len(sweep(app)["attribution_alerts"]) == 1


def test_the_threshold_is_a_setting(build_app, ci, admin):
    app = build_app(PREDICTION_LOG_SAMPLE=1.0, ATTRIBUTION_MIN_ROWS=20, MONITOR_WINDOW="1h", ATTRIBUTION_DRIFT=0.999)
    client = app.test_client()
    upload_ok(client, ci, "m", uses(0), {"feature_names": NAMES})
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert client.patch("/models/m", json={"prediction_log": {"explain": 1.0}}, headers=ci).status_code == 200
    canary(client, ci, mixed_canary())
    answer(app, client, 120, "t")
    assert sweep(app)["attribution_alerts"] == []  # apart by about a half: under 0.999


def mixed_canary() -> LinearRegression:
    """A canary moved by x0 and x2 alike: half its attributions where the primary has none."""
    return LinearRegression().fit(X, 3 * X[:, 0] + 3 * X[:, 2])
