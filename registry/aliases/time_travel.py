"""Time travel: the alias map of a model at any past instant, replayed from its history."""
from datetime import datetime, timezone

from sqlalchemy import select

from registry.db import db
from registry.errors import InvalidInput
from registry.lookups import find_model
from registry.tables import PromotionEvent, utcnow

# What each action of the history does to the alias it names; any other action (a rollout
# starting, changing or being aborted) leaves the alias where it was.
POINTS_ALIAS = frozenset({"promote", "break_glass", "rollback", "rollout_promote"})
REMOVES_ALIAS = frozenset({"delete"})


def aliases_at(name: str, at: datetime) -> dict[str, int]:
    """``{alias: version}`` of model ``name`` as it was at ``at`` (timezone-aware); ``{}`` before any move."""
    if at > utcnow():
        raise InvalidInput(
            f"at {at.isoformat()} is in the future; ask about an instant up to now", errors={"at": ["in the future"]}
        )
    model = find_model(name)
    try:
        at = at.astimezone(timezone.utc)
    except OverflowError:  # before 0001-01-01 in UTC: before any history
        return {}
    events = db.session.execute(
        select(PromotionEvent.alias, PromotionEvent.action, PromotionEvent.to_version)
        .where(PromotionEvent.model_id == model.id, PromotionEvent.at <= at)
        .order_by(PromotionEvent.id)
    ).all()
    aliases: dict[str, int] = {}
    for alias, action, to_version in events:
        if action in POINTS_ALIAS:
            aliases[alias] = to_version
        elif action in REMOVES_ALIAS:
            aliases.pop(alias, None)
    return dict(sorted(aliases.items()))
