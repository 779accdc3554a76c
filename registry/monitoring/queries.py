"""Reading the prediction log back: a model's logged requests, newest first, a page at a time."""
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from registry.db import db
from registry.lookups import find_model
from registry.monitoring.tables import LoggedPrediction


@dataclass(frozen=True)
class LoggedPage:
    """Logged requests, newest first, and the cursor of the next (older) page; None on the last."""

    items: list[LoggedPrediction]
    next_cursor: int | None


def logged_predictions(name: str, *, version: int | None = None, since: datetime | None = None,
                       until: datetime | None = None, limit: int = 100, cursor: int | None = None) -> LoggedPage:
    """``name``'s logged requests, of ``version`` if given, at or after ``since`` and before ``until``,
    older than ``cursor`` (a ``next_cursor`` given before)."""
    model = find_model(name)
    query = select(LoggedPrediction).where(LoggedPrediction.model_id == model.id)
    if version is not None:
        query = query.where(LoggedPrediction.version == version)
    if since is not None:
        query = query.where(LoggedPrediction.at >= since)
    if until is not None:
        query = query.where(LoggedPrediction.at < until)
    if cursor is not None:
        query = query.where(LoggedPrediction.id < cursor)
    found = list(db.session.execute(query.order_by(LoggedPrediction.id.desc()).limit(limit + 1)).scalars())
    more = len(found) > limit
    items = found[:limit]
    return LoggedPage(items, items[-1].id if more else None)
