"""The monitoring sweep: the served versions' live quality and drift kept for /metrics, a model.drift
event when a column newly drifts, nothing kept for what is not served; and the lease that lets one
process of a fleet sweep."""
import json
from datetime import timedelta

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from registry import leases
from registry.db import db, write_transaction
from registry.events.tables import WebhookEvent
from registry.monitoring.tables import VersionHealth
from registry.tables import Lease, utcnow
from tests.helpers import PROBE_ROW, scaled_sum, upload_ok

PUBLIC_URL = "https://93.184.215.14/hooks/registry"  # a literal public address: no DNS needed
SWEPT_GAUGES = {"registry_model_quality", "registry_model_quality_ci_low", "registry_model_quality_ci_high",
                "registry_model_logged_requests", "registry_model_labelled_requests", "registry_model_drifted",
                "registry_model_drift_psi"}


@pytest.fixture
def app(build_app):
    return build_app(PREDICTION_LOG_SAMPLE=1.0, MONITOR_WINDOW="1h")


@pytest.fixture
def served(app, client, ci, admin):
    upload_ok(client, ci, "m", scaled_sum(1))
    upload_ok(client, ci, "m", scaled_sum(2))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    created = client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["model.drift"]}, headers=admin)
    assert created.status_code == 201, created.get_json()
    return "m"


def sweep(app) -> dict:
    result = app.test_cli_runner().invoke(args=["monitoring", "sweep"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def answer(app, client, rows, prefix) -> list:
    predictions = []
    for i in range(0, len(rows), 10):
        answered = client.post("/models/m/production/predict", json={"instances": rows[i:i + 10]},
                               headers={"X-Request-ID": f"{prefix}-{i}"})
        assert answered.status_code == 200
        predictions.append((f"{prefix}-{i}", answered.get_json()["predictions"]))
    assert app.extensions["model_registry"].prediction_log.flush()
    return predictions


def gauges(client) -> dict:
    text = client.get("/metrics").get_data(as_text=True)
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name in SWEPT_GAUGES}


def drift_events(app) -> list[dict]:
    with app.app_context():
        bodies = db.session.execute(select(WebhookEvent.body).where(WebhookEvent.type == "model.drift")
                                    .order_by(WebhookEvent.id)).scalars().all()
    return [json.loads(body)["data"] for body in bodies]


def test_the_sweep_keeps_live_quality_for_metrics_and_alerts_once_on_new_drift(app, client, served, ci):
    rng = np.random.default_rng(3)
    training = rng.normal(size=(2000, 3))
    sent = client.put("/models/m/versions/1/reference", json={"source": "training", "instances": training.tolist()},
                      headers=ci)
    assert sent.status_code == 200
    calm = answer(app, client, rng.normal(size=(120, 3)).tolist(), "calm")
    labels = [{"request_id": rid, "label": [p + 0.5 for p in predicted]} for rid, predicted in calm]
    assert client.post("/models/m/feedback", json={"items": labels}, headers=ci).get_json()["applied"] == 12

    assert sweep(app) == {"versions": 1, "alerts": [], "attribution_alerts": []}  # nothing drifted yet
    seen = gauges(client)
    version = (("metric", "mae"), ("model", "m"), ("version", "1"))
    assert seen[("registry_model_quality", version)] == pytest.approx(0.5)
    assert seen[("registry_model_quality_ci_low", version)] <= 0.5 <= seen[("registry_model_quality_ci_high", version)]
    assert seen[("registry_model_logged_requests", (("model", "m"), ("version", "1")))] == 12
    assert seen[("registry_model_labelled_requests", (("model", "m"), ("version", "1")))] == 12
    assert seen[("registry_model_drifted", (("column", "x0"), ("model", "m"), ("version", "1")))] == 0
    assert drift_events(app) == []

    moved = rng.normal(size=(300, 3))
    moved[:, 2] += 2.0
    answer(app, client, moved.tolist(), "moved")
    (alert,) = sweep(app)["alerts"]
    assert (alert["model"], alert["version"], alert["window"]) == ("m", 1, "1h")
    assert alert["columns"] == ["x2", "predictions"] and alert["drift"]["reference"] == "training"
    assert drift_events(app) == [alert]  # the webhook event carries the same figures
    assert gauges(client)[("registry_model_drifted", (("column", "x2"), ("model", "m"), ("version", "1")))] == 1

    assert sweep(app)["alerts"] == []  # still drifted, not newly: no second alert
    assert len(drift_events(app)) == 1


def test_an_interval_without_an_end_is_kept_as_null_on_both_backends(app, client, served, ci):
    """One labelled row of a regressor: its error's interval has no upper end (infinite). PostgreSQL's
    json refuses Infinity, so the sweep failed there at every turn and /metrics never showed the version."""
    ((request_id, predicted),) = answer(app, client, [PROBE_ROW], "single")
    labels = [{"request_id": request_id, "label": [predicted[0] + 0.25]}]
    assert client.post("/models/m/feedback", json={"items": labels}, headers=ci).get_json()["applied"] == 1

    assert sweep(app) == {"versions": 1, "alerts": [], "attribution_alerts": []}

    with app.app_context():
        kept = db.session.execute(select(VersionHealth.figures)).scalar_one()["quality"]
    assert (kept["value"], kept["ci_high"], kept["rows"]) == (pytest.approx(0.25), None, 1)
    seen = gauges(client)
    version = (("metric", "mae"), ("model", "m"), ("version", "1"))
    assert seen[("registry_model_quality", version)] == pytest.approx(0.25)
    assert ("registry_model_quality_ci_high", version) not in seen
    assert seen[("registry_model_logged_requests", (("model", "m"), ("version", "1")))] == 1


def test_a_version_no_longer_served_leaves_the_sweep_and_the_metrics(app, client, served, ci):
    answer(app, client, [PROBE_ROW], "one")
    assert sweep(app)["versions"] == 1
    assert client.post("/models/m/versions/2/promote", json={}, headers=ci).status_code == 200

    assert sweep(app)["versions"] == 1  # version 2 now
    with app.app_context():
        kept = db.session.execute(select(VersionHealth.version)).scalars().all()
    assert kept == [2]
    series = [labels for name, labels in gauges(client) if name == "registry_model_logged_requests"]
    assert series == [(("model", "m"), ("version", "2"))]


def test_a_canary_and_a_shadow_are_swept_beside_their_primary(app, client, served, ci):
    upload_ok(client, ci, "m", scaled_sum(3))
    rollout = {"canary": {"version": 2, "percent": 10}, "shadow": {"version": 3, "percent": 100}}
    assert client.put("/models/m/aliases/production/rollout", json=rollout, headers=ci).status_code == 200
    assert sweep(app)["versions"] == 3


def test_only_the_holder_of_a_lease_holds_it_until_it_runs_out_or_is_let_go(app):
    with app.app_context():
        assert leases.hold("work", "a", seconds=30)
        assert not leases.hold("work", "b", seconds=30)
        assert leases.hold("work", "a", seconds=30)  # renewed
        with write_transaction():
            db.session.execute(update(Lease).where(Lease.name == "work").values(expires_at=utcnow() - timedelta(seconds=1)))
        assert leases.hold("work", "b", seconds=30)  # a's ran out: b takes it
        assert not leases.hold("work", "a", seconds=30)
        leases.release("work", "b")
        assert leases.hold("work", "a", seconds=30)  # let go: taken at once
        assert leases.hold("other", "b", seconds=30)  # leases are by name
        holders = dict(db.session.execute(select(Lease.name, Lease.holder)).all())
    assert holders == {"work": "a", "other": "b"}


def test_a_monitor_window_that_is_not_a_window_stops_the_start(build_app):
    with pytest.raises(SystemExit, match="MONITOR_WINDOW='hourly'"):
        build_app(MONITOR_WINDOW="hourly")
