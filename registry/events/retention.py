"""Pruning what the outbox has sent: deliveries that ended (delivered or given up) and their attempts
after the retention period, then the events no delivery refers to any more."""
from datetime import timedelta

from sqlalchemy import delete, exists, select

from registry.db import db, write_transaction
from registry.events.tables import DELIVERED, FAILED, WebhookDelivery, WebhookEvent
from registry.tables import utcnow


def prune(retention_seconds: float) -> int:
    """Delete ended deliveries (attempts go with them) and unreferenced events older than
    ``retention_seconds``; how many deliveries went. Pending deliveries are never pruned."""
    cutoff = utcnow() - timedelta(seconds=retention_seconds)
    with write_transaction():
        gone = db.session.execute(
            delete(WebhookDelivery)
            .where(WebhookDelivery.created_at < cutoff, WebhookDelivery.status.in_((DELIVERED, FAILED)))
        ).rowcount
        db.session.execute(
            delete(WebhookEvent).where(
                WebhookEvent.created_at < cutoff,
                ~exists(select(WebhookDelivery.id).where(WebhookDelivery.event_id == WebhookEvent.id)),
            )
        )
    return gone
