"""Checking the ledger: walk the history's hash chain and name the first entry that does not hold, then the
live alias, rollout and policy rows that differ from what it says; export
the chain as JSON lines so it can be checked elsewhere (registry/ledger.py says what an entry's hash covers).
"""
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from registry.db import db, on_postgresql
from registry.integrity.state import Replay
from registry.ledger import GENESIS, HEAD_ID, entry_hash, export_line, fields_of
from registry.tables import LedgerHead, PromotionEvent

STATE = "state"  # the kind of a live row that differs from what the chain says
BATCH = 1000  # rows read at a time: the walk holds one batch in memory, whatever the ledger's length


@dataclass(frozen=True)
class Broken:
    """The first entry that does not hold (``id`` None: the chain's head names entries that are gone)."""

    id: int | None  # for a live row: the entry that said last what it should be (None: no entry ever did)
    at: datetime | None
    kind: str | None  # the entry's action: promote, rollback, rollout_abort …; "state" for a live row
    problem: str  # altered, unlinked, unrecorded or truncated; differs (a live row, ``kind`` "state")
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The walk's outcome: how many entries it read, the hash of the last, and the first that broke."""

    entries: int
    head: str
    first_broken: Broken | None
    state: list[Broken] = field(default_factory=list)  # every live row that differs from what the chain says

    @property
    def ok(self) -> bool:
        """True when every entry holds, the chain ends where its head says, and the live rows are what it says."""
        return self.first_broken is None


def verify() -> Verdict:
    """Walk the whole chain in order, in one snapshot, and name the first entry that does not hold; if every
    entry holds, replay it into the aliases, rollouts and policies and name every live row that differs
    (:mod:`registry.integrity.state`)."""
    _one_snapshot()
    try:
        return _walk()
    finally:
        db.session.rollback()  # a read-only transaction: hold no snapshot past the walk


def _walk() -> Verdict:
    head = db.session.execute(select(LedgerHead).where(LedgerHead.id == HEAD_ID)).scalar_one_or_none()
    head_id, head_hash = (head.last_id, head.hash) if head is not None else (None, GENESIS)
    held, previous, previous_id = 0, GENESIS, None
    replay = Replay()
    for row in _rows():
        problem = _problem(row, previous, previous_id, head_id)
        if problem is not None:
            return Verdict(held, previous, Broken(row.id, row.at, row.action, *problem))
        replay.read(row)
        held, previous, previous_id = held + 1, row.hash, row.id
    if previous != head_hash:
        after = f"after entry {previous_id}" if previous_id is not None else "at all"
        return Verdict(held, previous, Broken(
            head_id, None, None, "truncated",
            f"the chain's head records entry {head_id} as the last, and the ledger has no entry {after} that "
            "ends there: entries were removed from its end",
        ))
    differing = [Broken(found.entry, found.at, STATE, "differs", found.detail) for found in replay.differences()]
    return Verdict(held, previous, differing[0] if differing else None, differing)


def _problem(row, previous: str, previous_id: int | None, head_id: int | None) -> tuple[str, str] | None:
    """What is wrong with ``row``, read after ``previous_id`` whose hash is ``previous``: (problem, detail)."""
    if entry_hash(fields_of(row)) != row.hash:
        return "altered", (f"entry {row.id} does not match its hash: it was changed after it was written, or "
                           "written outside the registry")
    if row.prev_hash != previous:
        after = f"entry {previous_id}" if previous_id is not None else "the start of the ledger"
        return "unlinked", (f"entry {row.id} does not follow {after}: an entry between them was removed or "
                            "inserted, or one was rewritten")
    if head_id is None or row.id > head_id:
        recorded = f"entry {head_id}" if head_id is not None else "none (its row is missing)"
        return "unrecorded", (f"entry {row.id} comes after the last entry the chain's head records, {recorded}: "
                              "it was added outside the registry")
    return None


def export() -> Iterator[str]:
    """The chain as JSON lines, oldest first: each entry's canonical form with its ``hash`` added."""
    _one_snapshot()
    try:
        for row in _rows():
            yield export_line(fields_of(row), row.hash)
    finally:
        db.session.rollback()


def _rows() -> Iterator:
    """Every history row in the chain's order, read in batches."""
    query = select(PromotionEvent.__table__).order_by(PromotionEvent.id)
    yield from db.session.execute(query, execution_options={"yield_per": BATCH})


def _one_snapshot() -> None:
    """Read the head and every row as of one instant, while writers go on appending."""
    db.session.rollback()
    if on_postgresql():  # SQLite's read transaction is a snapshot already
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
