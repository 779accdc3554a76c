"""Changes the serving runtime must learn of, recorded in the transaction that makes them and handed
over once it commits, as the outbox does for webhooks.

A use case calls :func:`record` inside its write transaction; if the transaction rolls back, its
changes go with it. After the commit, :data:`committed` is sent once with every change the
transaction recorded, in order. The app connects the receiver that hands them to its runtime (and
wakes its webhook deliverer); other processes learn the same changes from the database: on
PostgreSQL at once, from a ``NOTIFY`` on :data:`CHANNEL` sent in the same transaction
(:mod:`registry.serving.notifications` listens), otherwise at their next poll.
"""
import logging
from dataclasses import dataclass

from blinker import Namespace
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from registry.db import db, on_postgresql
from registry.facts import RolloutSpec, VersionInfo

log = logging.getLogger(__name__)

_RECORDED = "registry_changes"  # the session.info key of the changes of the open transaction
CHANNEL = "registry_changes"  # PostgreSQL's notification channel of changes other processes serve

committed = Namespace().signal("registry-changes-committed")


@dataclass(frozen=True)
class AliasServes:
    """An alias now serves ``primary``, with ``rollout`` on it (None: no rollout runs)."""

    model: str
    alias: str
    primary: VersionInfo
    rollout: RolloutSpec | None = None


@dataclass(frozen=True)
class AliasDeleted:
    """An alias was deleted."""

    model: str
    alias: str


@dataclass(frozen=True)
class VersionRetired:
    """A version was archived: it serves nothing any more."""

    model: str
    number: int


@dataclass(frozen=True)
class ModelChanged:
    """A model's own settings changed (the share of its answers logged): every process reads them again."""

    model: str


@dataclass(frozen=True)
class EventsRecorded:
    """Webhook events were added to the outbox."""


Change = AliasServes | AliasDeleted | VersionRetired | ModelChanged | EventsRecorded


def record(change: Change) -> None:
    """Add ``change`` to the current transaction; it is handed over if, and once, the transaction commits."""
    recorded = db.session.info.setdefault(_RECORDED, [])
    if change in recorded:
        return
    served = not isinstance(change, EventsRecorded)
    if served and not any(not isinstance(c, EventsRecorded) for c in recorded) and on_postgresql():
        # Delivered when the transaction commits, and not at all if it rolls back.
        db.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    recorded.append(change)


@event.listens_for(Session, "after_commit")
def _hand_over(session: Session) -> None:
    changes = session.info.pop(_RECORDED, None)
    if not changes:
        return
    try:
        committed.send(None, changes=tuple(changes))
    except Exception:  # the change is committed: the watcher of every process serves it within its period
        log.exception("could not apply committed changes at once; the alias watcher will")


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_RECORDED, None)
