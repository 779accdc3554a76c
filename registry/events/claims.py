"""The deliveries table as a work queue: claim what is due, record what an attempt came to.

A claim is a lease: the row is the claimer's until ``claimed_until``, so a crashed claimer's rows
come back by themselves. On PostgreSQL a claimer first locks the subscriptions it will claim for,
skipping those another claimer holds (``FOR UPDATE SKIP LOCKED``), and then reads their deliveries
afresh, so two claimers never put two deliveries of one subscription in flight; on SQLite the
claim runs under the database's write lock (``BEGIN IMMEDIATE``).
"""
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import aliased

from registry.db import db, write_transaction
from registry.events.messages import Message, Outcome
from registry.events.tables import DELIVERED, FAILED, PENDING, DeliveryAttempt, WebhookDelivery, WebhookSubscription
from registry.tables import utcnow

CANDIDATES_PER_SLOT = 4
# Failed attempts in a row after which an endpoint is paused (the circuit breaker opens).
BREAKER_AFTER = 5


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, for at least ``window_seconds`` after the delivery was made."""

    base_seconds: float = 10.0
    max_seconds: float = 3600.0
    window_seconds: float = 86_400.0

    def delay(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones: half fixed, half random."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** min(attempts - 1, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def gives_up(self, created_at: datetime, now: datetime) -> bool:
        """Whether the retry window is over (the last try is at or after its end)."""
        return (now - created_at).total_seconds() >= self.window_seconds


@dataclass(frozen=True)
class Claim:
    """A delivery leased to this claimer, with everything needed to send it."""

    delivery_id: int
    token: str
    message: Message


def due_exists() -> bool:
    """Whether any delivery is due now (a cheap read, so idle pollers take no write lock)."""
    return db.session.execute(select(_due(utcnow(), WebhookDelivery.id).exists())).scalar()


def claim_due(limit: int, lease_seconds: float) -> list[Claim]:
    """Lease up to ``limit`` due deliveries, at most one per subscription, oldest first."""
    now = utcnow()
    token = secrets.token_hex(16)
    with write_transaction():
        rows = (_oldest_due(now, subscription) for subscription in _lock_subscriptions_with_due(now, limit))
        chosen = [row for row in rows if row is not None]
        for delivery, _ in chosen:
            delivery.claimed_until = now + timedelta(seconds=lease_seconds)
            delivery.claim_token = token
        claims = [
            Claim(d.id, token, Message(d.event.uid, d.event.body, s.url, s.signing_secrets(now))) for d, s in chosen
        ]
    return claims


def _lock_subscriptions_with_due(now: datetime, limit: int) -> list[int]:
    """Up to ``limit`` subscriptions with a due delivery, oldest due first, locked for this claim.

    Skipping the ones another claimer holds: whatever it claims for them it has committed by the
    time their lock is free, so the next read (a new snapshot on PostgreSQL) sees it in flight.
    ``NO KEY UPDATE`` lets the transactions that add deliveries for them go on meanwhile.
    """
    # A few rows per slot, so that a backlog of one subscription leaves room for the others.
    due = db.session.execute(
        _due(now, WebhookDelivery.subscription_id)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit * CANDIDATES_PER_SLOT)
    ).scalars().all()
    wanted = list(dict.fromkeys(due))[:limit]
    if not wanted:
        return []
    locked = set(db.session.execute(
        select(WebhookSubscription.id).where(WebhookSubscription.id.in_(wanted))
        .with_for_update(skip_locked=True, key_share=True)
    ).scalars())
    return [subscription for subscription in wanted if subscription in locked]


def _oldest_due(now: datetime, subscription_id: int):
    """The subscription's oldest due delivery and the subscription, unless one is in flight."""
    return db.session.execute(
        _due(now, WebhookDelivery, WebhookSubscription)
        .where(WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(1)
        .with_for_update(of=WebhookDelivery, skip_locked=True, key_share=True)
    ).first()


def record_attempt(claim: Claim, outcome: Outcome, policy: RetryPolicy) -> None:
    """Log the attempt and settle the delivery: delivered, failed for good, or due again later.

    Nothing is written when the lease was lost (another claimer has the row now).
    """
    now = utcnow()
    with write_transaction():
        delivery = db.session.execute(
            select(WebhookDelivery).where(WebhookDelivery.id == claim.delivery_id, WebhookDelivery.claim_token == claim.token)
        ).scalar_one_or_none()
        if delivery is None:
            return
        db.session.add(DeliveryAttempt(
            delivery_id=delivery.id, at=now, status_code=outcome.status_code, error=outcome.error,
            duration_ms=outcome.duration_ms,
        ))
        delivery.attempts += 1
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        delivery.claimed_until = delivery.claim_token = None
        _settle(delivery, outcome, policy, now)
        _trip_or_reset(db.session.get(WebhookSubscription, delivery.subscription_id), outcome, policy, now)


def _trip_or_reset(subscription: WebhookSubscription | None, outcome: Outcome, policy: RetryPolicy,
                   now: datetime) -> None:
    """The circuit breaker: after ``BREAKER_AFTER`` failed attempts in a row the endpoint is left alone
    for a while (doubling, up to the longest retry delay) before its next attempt; a success resets it."""
    if subscription is None:
        return
    if outcome.delivered:
        subscription.failures_in_a_row, subscription.paused_until = 0, None
        return
    subscription.failures_in_a_row += 1
    over = subscription.failures_in_a_row - BREAKER_AFTER
    if over >= 0:
        pause = min(policy.max_seconds, policy.base_seconds * 2 ** min(over, 32))
        subscription.paused_until = now + timedelta(seconds=pause)


def _settle(delivery: WebhookDelivery, outcome: Outcome, policy: RetryPolicy, now: datetime) -> None:
    if outcome.delivered:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DELIVERED, now, None
    elif not outcome.retryable:
        delivery.status, delivery.next_attempt_at = FAILED, None
    elif policy.gives_up(delivery.created_at, now):
        delivery.status, delivery.next_attempt_at = FAILED, None
        delivery.last_error = f"gave up after {delivery.attempts} attempts; last: {outcome.error or f'HTTP {outcome.status_code}'}"
    else:
        delay = policy.delay(delivery.attempts)
        if outcome.retry_after_seconds is not None:  # the receiver's own ask, within the policy's longest delay
            delay = min(max(delay, outcome.retry_after_seconds), policy.max_seconds)
        delivery.next_attempt_at = now + timedelta(seconds=delay)


def _due(now: datetime, *columns):
    """``columns`` of the pending deliveries of active subscriptions whose time has come and that nobody holds.

    A subscription with a delivery in flight gets no other, so a hanging receiver ties up at most
    one sending thread of the whole deployment.
    """
    held = aliased(WebhookDelivery)
    in_flight = select(held.id).where(
        held.subscription_id == WebhookDelivery.subscription_id, held.status == PENDING, held.claimed_until >= now
    )
    return (
        select(*columns)
        .select_from(WebhookDelivery)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            WebhookSubscription.active.is_(True),
            or_(WebhookSubscription.paused_until.is_(None), WebhookSubscription.paused_until <= now),
            ~in_flight.exists(),
        )
    )
