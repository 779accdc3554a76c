"""The history entries and webhook events of governance: policy changes, requests, approvals, rejections,
withdrawals, expiries."""
from registry.db import db
from registry.events import outbox
from registry.tables import PromotionEvent, RegisteredModel, utcnow

# The webhook event each governance action of the history is announced as.
ANNOUNCED = {
    "policy_set": "policy.changed",
    "policy_delete": "policy.changed",
    "request_open": "approval.requested",
    "approve": "approval.granted",
    "request_reject": "approval.rejected",
    "request_withdraw": "approval.withdrawn",
    "request_expire": "approval.expired",
}


def append(model: RegisteredModel, alias: str, action: str, *, actor: str, reason: str, served: int | None,
           version: int | None = None, details: dict | None = None) -> PromotionEvent:
    """Append a governance entry to the alias's history and announce it, in the caller's transaction.

    ``served`` is the version the alias serves (it does not move); ``version`` the one a request asks for."""
    event = PromotionEvent(
        model_id=model.id, alias=alias, action=action, from_version=served,
        to_version=version if version is not None else served, actor=actor, reason=reason or "", forced=False,
        details=details,
    )
    db.session.add(event)
    model.updated_at = utcnow()
    db.session.flush()
    outbox.record(ANNOUNCED[action], {
        "model": model.name, "alias": alias, "action": action, "actor": actor, "reason": event.reason,
        "served_version": served, "version": version, "history_id": event.id, **(details or {}),
    })
    return event
