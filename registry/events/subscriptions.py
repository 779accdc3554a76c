"""Use cases of webhook subscriptions: subscribe, change, remove, and look at or retry deliveries."""
import base64
import secrets
from datetime import timedelta

from sqlalchemy import select

from registry import entries
from registry.db import db, write_transaction
from registry.errors import Conflict, DeliveryNotFound, InvalidInput, SubscriptionNotFound, listed
from registry.events import outbox
from registry.events.addresses import check_url
from registry.events.tables import WebhookDelivery, WebhookSubscription
from registry.paging import Page, paginate
from registry.tables import utcnow

SECRET_BYTES = 24
MAX_SECRET_BYTES = 64  # a given secret's key, at most (Standard Webhooks: 24 to 64)
EDITABLE = ("url", "events", "active", "description")


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form ``whsec_<base64>``."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def checked_secret(secret: str) -> str:
    """``secret`` if it is a signing secret in the Standard Webhooks form: ``whsec_`` and the base64 of 24 to 64
    bytes; else InvalidInput."""
    key = secret.removeprefix("whsec_")
    try:
        decoded = base64.b64decode(key, validate=True) if key != secret else b""
    except ValueError:
        decoded = b""
    if not SECRET_BYTES <= len(decoded) <= MAX_SECRET_BYTES:
        raise InvalidInput(f"secret must be whsec_ and the base64 of {SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes",
                           errors={"secret": ["not whsec_<base64 of 24 to 64 bytes>"]})
    return secret


def create_subscription(*, url: str, events: list[str], description: str, actor: str, allow_private: bool,
                        secret: str | None = None, reason: str = "") -> WebhookSubscription:
    """Subscribe ``url`` to ``events`` (or ``["*"]``), signed with ``secret`` when given (else a new one), as
    ``actor``'s (a ``webhook_create`` entry of the ledger with ``reason``; never the secret); the returned row
    holds the secret."""
    subscription = WebhookSubscription(
        url=check_url(url, allow_private), events=checked_events(events), description=description,
        secret=checked_secret(secret) if secret is not None else new_secret(), active=True, created_by=actor,
    )
    with write_transaction():
        db.session.add(subscription)
        db.session.flush()  # its id, which the entry names
        entries.record("webhook_create", actor=actor, reason=reason, details={
            "webhook": subscription.id, "url": subscription.url, "events": subscription.events,
            "description": description})
    return subscription


def subscription_page(page: int, per_page: int) -> Page:
    """Subscriptions, oldest first."""
    return paginate(select(WebhookSubscription).order_by(WebhookSubscription.id), page, per_page)


def get_subscription(subscription_id: int, *, lock: bool = False) -> WebhookSubscription:
    """One subscription by id."""
    query = select(WebhookSubscription).where(WebhookSubscription.id == subscription_id)
    subscription = db.session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if subscription is None:
        raise SubscriptionNotFound(f"no webhook subscription with id {subscription_id}")
    return subscription


def update_subscription(subscription_id: int, changes: dict, allow_private: bool, *, actor: str,
                        reason: str = "") -> WebhookSubscription:
    """Change the url, events, active flag or description, as ``actor``'s (what differs is a ``webhook_update``
    entry of the ledger, with ``reason``); the url and events are checked again."""
    if "url" in changes:
        changes["url"] = check_url(changes["url"], allow_private)
    if "events" in changes:
        changes["events"] = checked_events(changes["events"])
    with write_transaction():
        subscription = get_subscription(subscription_id, lock=True)
        differs = entries.changed(subscription, changes, EDITABLE)
        for key, value in differs.items():
            setattr(subscription, key, value)
        subscription.updated_at = utcnow()
        if differs:
            entries.record("webhook_update", actor=actor, reason=reason,
                           details={"webhook": subscription_id, "changed": differs})
    return subscription


def rotate_secret(subscription_id: int, *, grace_hours: float, actor: str, reason: str = "") -> WebhookSubscription:
    """Give the subscription a new secret, as ``actor``'s (a ``webhook_rotate`` entry of the ledger with
    ``reason``, never the secret); the old one signs too for ``grace_hours``, then stops.

    Returns the row holding the new secret (shown once, like at subscription).
    """
    with write_transaction():
        subscription = get_subscription(subscription_id, lock=True)
        now = utcnow()
        subscription.previous_secret = subscription.secret
        subscription.previous_secret_until = now + timedelta(hours=grace_hours)
        subscription.secret = new_secret()
        subscription.updated_at = now
        entries.record("webhook_rotate", actor=actor, reason=reason,
                       details={"webhook": subscription_id, "grace_hours": grace_hours})
    return subscription


def delete_subscription(subscription_id: int, *, actor: str, reason: str = "") -> None:
    """Remove a subscription with its delivery log, as ``actor``'s (a ``webhook_delete`` entry of the ledger with
    ``reason``); pending deliveries to it are dropped."""
    with write_transaction():
        subscription = get_subscription(subscription_id, lock=True)
        db.session.delete(subscription)
        entries.record("webhook_delete", actor=actor, reason=reason, details={
            "webhook": subscription_id, "url": subscription.url, "events": subscription.events})


def delivery_page(subscription_id: int, page: int, per_page: int) -> Page:
    """A subscription's deliveries, newest first."""
    get_subscription(subscription_id)
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    return paginate(query.order_by(WebhookDelivery.id.desc()), page, per_page)


def get_delivery(subscription_id: int, delivery_id: int) -> WebhookDelivery:
    """One delivery of a subscription."""
    get_subscription(subscription_id)
    delivery = db.session.execute(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.subscription_id == subscription_id)
    ).scalar_one_or_none()
    if delivery is None:
        raise DeliveryNotFound(f"webhook subscription {subscription_id} has no delivery {delivery_id}")
    return delivery


def redeliver(subscription_id: int, delivery_id: int) -> WebhookDelivery:
    """Send a delivery's event again, as a new delivery (same event, same webhook-id), due now."""
    with write_transaction():
        subscription = _active(subscription_id)
        original = get_delivery(subscription_id, delivery_id)
        return outbox.add_delivery(subscription, original.event)


def ping(subscription_id: int) -> WebhookDelivery:
    """Queue a ``ping`` event for this subscription only, due now."""
    with write_transaction():
        return outbox.record_ping(_active(subscription_id))


def checked_events(events: list[str]) -> list[str]:
    """The event types, each known (or ``*`` for all), without duplicates, in the order given."""
    unknown = [e for e in events if e != "*" and e not in outbox.EVENT_TYPES]
    if unknown or not events:
        detail = (
            f"unknown event type(s) {listed([repr(e) for e in unknown])}" if unknown else "name at least one event type"
        ) + f"; use \"*\" or any of {', '.join(outbox.EVENT_TYPES)}"
        raise InvalidInput(detail, errors={"events": [detail]})
    return ["*"] if "*" in events else list(dict.fromkeys(events))


def _active(subscription_id: int) -> WebhookSubscription:
    subscription = get_subscription(subscription_id, lock=True)
    if not subscription.active:
        raise Conflict(f"webhook subscription {subscription_id} is inactive; PATCH it with \"active\": true first")
    return subscription
