"""The transactional outbox: use cases record events in their own transaction; the deliverer sends them.

An event becomes one row in ``webhook_events`` plus one pending delivery per active subscription
that wants it, all in the caller's transaction: if the change rolls back, so does its event. An
event nobody subscribes to is not written; what was sent is pruned after the retention period.
"""
import uuid
from datetime import datetime, timezone

from sqlalchemy import select

from registry import changes, finite_json
from registry.db import db
from registry.events.tables import WebhookDelivery, WebhookEvent, WebhookSubscription
from registry.tables import utcnow

# Adding an event type is one line here; subscriptions may name any of them, or "*".
EVENT_TYPES = (
    "version.created",
    "version.archived",
    "alias.moved",
    "rollout.started",
    "rollout.changed",
    "rollout.completed",
    "rollout.aborted",
    "rollout.step",
    "rollout.halted",
    "rollout.paused",
    "rollout.resumed",
    "model.drift",
    "model.attribution_drift",
    "artifact.damaged",
    "policy.changed",
    "approval.requested",
    "approval.granted",
    "approval.rejected",
    "approval.withdrawn",
    "approval.expired",
    "alias.break_glass",
    "batch_run.recorded",
)
PING = "ping"  # sent only to the subscription that asked for it


def record(event_type: str, data: dict) -> WebhookEvent | None:
    """Add an event and its deliveries to the current transaction (the caller commits).

    An event no active subscription wants is not written at all (None): nobody would read it.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; add it to EVENT_TYPES")
    subscriptions = db.session.execute(
        select(WebhookSubscription).where(WebhookSubscription.active.is_(True))
    ).scalars()
    wanting = [subscription for subscription in subscriptions if subscription.wants(event_type)]
    if not wanting:
        return None
    event = _add_event(event_type, data)
    for subscription in wanting:
        add_delivery(subscription, event)
    return event


def record_alias_moved(model_name: str, move) -> WebhookEvent | None:
    """``alias.moved`` for a history event (a promote, rollback, completed rollout or delete), in its transaction."""
    return record("alias.moved", {
        "model": model_name, "alias": move.alias, "from_version": move.from_version, "to_version": move.to_version,
        "action": move.action, "actor": move.actor, "reason": move.reason, "forced": move.forced,
        "history_id": move.id,
    })


def record_ping(subscription: WebhookSubscription) -> WebhookDelivery:
    """A ``ping`` event for one subscription, in the current transaction."""
    event = _add_event(PING, {"webhook_id": subscription.id, "url": subscription.url})
    return add_delivery(subscription, event)


def add_delivery(subscription: WebhookSubscription, event: WebhookEvent) -> WebhookDelivery:
    """A pending delivery of ``event`` to ``subscription``, due now."""
    delivery = WebhookDelivery(
        subscription_id=subscription.id, event_id=event.id, status="pending", attempts=0, next_attempt_at=utcnow()
    )
    delivery.event = event
    db.session.add(delivery)
    db.session.flush()
    return delivery


def _add_event(event_type: str, data: dict) -> WebhookEvent:
    now = utcnow()
    payload = {"type": event_type, "timestamp": _iso(now), "data": data}
    event = WebhookEvent(
        uid=f"msg_{uuid.uuid4().hex}", type=event_type, body=finite_json.dumps(payload, separators=(",", ":")), created_at=now
    )
    db.session.add(event)
    db.session.flush()
    changes.record(changes.EventsRecorded())  # wakes this process's deliverer after the commit
    return event


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
