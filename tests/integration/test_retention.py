"""Tables do not grow with activity alone: every table has a rule, and each rule holds."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from api.settings import settings_of
from registry.db import db
from registry.events import retention as outbox_retention
from registry.events.tables import DeliveryAttempt, WebhookDelivery, WebhookEvent
from registry.retention import RULES
from registry.serving.figures import FOLDED
from registry.tables import RolloutStats, utcnow
from tests.helpers import scaled_sum, upload_ok

PROBE = {"instances": [[1.0, 1.0, 1.0]]}


def count(app, table) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(table)).scalar_one()


def test_every_table_has_a_retention_rule():
    assert set(db.metadata.tables) == set(RULES)


@pytest.fixture
def served(client, ci):
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200


def test_events_nobody_subscribes_to_are_not_written(app, client, ci, admin, served):
    assert client.post("/models/m/versions/2/promote", json={}, headers=ci).status_code == 200
    assert client.delete("/models/m/versions/1", headers=admin).status_code == 200
    assert count(app, WebhookEvent) == 0


def test_sent_deliveries_and_their_events_are_pruned_after_the_retention_period(app, client, ci, admin, served):
    created = client.post("/webhooks", json={"url": "https://93.184.215.14/r", "events": ["alias.moved"]}, headers=admin)
    assert created.status_code == 201, created.get_json()
    for version in (2, 1, 2):
        assert client.post(f"/models/m/versions/{version}/promote", json={}, headers=ci).status_code == 200
    with app.app_context():
        ids = list(db.session.execute(select(WebhookDelivery.id).order_by(WebhookDelivery.id)).scalars())
        assert len(ids) == 3
        old = utcnow() - timedelta(days=31)
        db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == ids[0]).values(status="delivered", created_at=old))
        db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == ids[1]).values(status="pending", created_at=old))
        db.session.execute(update(WebhookDelivery).where(WebhookDelivery.id == ids[2]).values(status="failed"))
        db.session.execute(update(WebhookEvent).values(created_at=old))
        db.session.add(DeliveryAttempt(delivery_id=ids[0], status_code=200, duration_ms=3))
        db.session.commit()

        assert outbox_retention.prune(30 * 86_400) == 1

        kept = list(db.session.execute(select(WebhookDelivery.id).order_by(WebhookDelivery.id)).scalars())
    assert kept == ids[1:]  # a pending delivery is never pruned; a recent failed one waits its turn
    assert count(app, WebhookEvent) == 2
    assert count(app, DeliveryAttempt) == 0


def test_a_rollouts_figures_are_folded_when_it_ends_and_no_process_counts_it_after(app, client, ci, build_app, served):
    other = build_app(artifact_root=settings_of(app).storage.artifact_root)
    url = "/models/m/aliases/production/rollout"
    assert client.put(url, json={"canary": {"version": 2, "percent": 50}}, headers=ci).status_code == 200
    workers = [app, other]
    for worker in workers:
        for _ in range(20):
            assert worker.test_client().post("/models/m/production/predict", json=PROBE).status_code == 200
        worker.extensions["model_registry"].runtime.flush_figures()
    assert count(app, RolloutStats) == 4  # two processes, two roles
    figures = client.get(url).get_json()
    served_before = figures["primary"]["requests"] + figures["canary"]["requests"]
    assert served_before == 40

    ended = client.delete(url, json={"reason": "enough"}, headers=ci)
    assert ended.status_code == 200

    with app.app_context():
        rows = db.session.execute(select(RolloutStats)).scalars().all()
        assert {(row.process, row.role) for row in rows} == {(FOLDED, "primary"), (FOLDED, "canary")}
        assert sum(row.requests for row in rows) == served_before
    other_runtime = other.extensions["model_registry"].runtime
    other.test_client().post("/models/m/production/predict", json=PROBE)  # still routed by its old snapshot
    other_runtime.flush_figures()
    assert count(app, RolloutStats) == 2
    assert len(other_runtime.figures) == 0
