"""The ledger's entries of what is not an alias's move: a token made or revoked, a model's or a version's words
changed, a webhook subscribed, changed, given a new secret or removed. Each is a link of the history's hash chain
(:mod:`registry.ledger`), in the caller's transaction, so that ``audit verify`` covers who changed what and why."""
from registry.db import db
from registry.tables import PromotionEvent

MAX_REASON = 2_000  # characters of an optional reason, as an alias move's


def record(action: str, *, actor: str, reason: str, details: dict, model_id: int | None = None,
           version: int | None = None) -> PromotionEvent:
    """Append ``action`` by ``actor`` with ``reason`` and ``details`` (what changed, never a secret), of
    ``model_id`` (None: of no model) and ``version`` (a version's own change), at no alias."""
    entry = PromotionEvent(model_id=model_id, alias=None, action=action, from_version=version, to_version=version,
                           actor=actor, reason=reason or "", forced=False, details=details)
    db.session.add(entry)
    return entry


def changed(row, edits: dict, fields: tuple[str, ...]) -> dict:
    """The fields of ``fields`` that ``edits`` gives a value ``row`` does not hold yet: ``{field: new value}``."""
    return {field: edits[field] for field in fields if field in edits and getattr(row, field) != edits[field]}
