"""The ledger's hash chain: what an entry of the history is, byte for byte, and how it joins the chain.

Every row of ``promotion_events`` (alias moves, rollouts and their verdicts, and whatever else the
history records) carries ``prev_hash``, the hash of the entry before it (``GENESIS`` for the first),
and ``hash``, the sha256 of its canonical form, which includes ``prev_hash``: change, remove or
insert one entry and the chain stops holding from there on.

The canonical form (version 1) is the JSON object of ``FIELDS`` written as Python writes
``json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`` and encoded as ASCII:
``at`` is ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC, ``details`` the JSON the row holds (or null; JSON
holds finite numbers only, registry/finite_json.py), ``forced`` a boolean, the rest as stored. An
export line is that object with ``hash`` added, so a few lines of standalone Python check an export
(docs/ledger.md).

The head of the chain (``ledger_head``, one row) holds the number of entries, the last one's id and
hash. Appending locks it (``FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time, taken here
before anything is read), so concurrent writers queue and the chain never forks; ids are handed out
under that lock, so the chain's order is the ids' order. ``link`` runs as each entry is inserted,
whoever writes it (registry/tables.py attaches it), in the writer's transaction.
"""
import hashlib
import json
from datetime import datetime, timezone

from sqlalchemy import Table, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from registry import finite_json

GENESIS = "0" * 64  # the prev_hash of the first entry
HEAD_ID = 1  # the one row of ledger_head
FIELDS = ("id", "at", "model_id", "alias", "action", "from_version", "to_version", "reverts_event_id", "actor",
          "reason", "forced", "details", "prev_hash")


def canonical(entry: dict) -> bytes:
    """The bytes an entry's hash is taken over: ``entry``'s FIELDS as sorted, compact, ASCII JSON."""
    return json.dumps({name: entry[name] for name in FIELDS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def entry_hash(entry: dict) -> str:
    """The sha256 (hex) of an entry's canonical form."""
    return hashlib.sha256(canonical(entry)).hexdigest()


def export_line(entry: dict, digest: str) -> str:
    """One line of an export: the entry's canonical FIELDS and its ``hash``, in the same JSON form."""
    fields = {name: entry[name] for name in FIELDS}
    return json.dumps({**fields, "hash": digest}, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def fields_of(row) -> dict:
    """The canonical FIELDS of a history row (an ORM object or a result row with the same attributes)."""
    return {
        "id": row.id,
        "at": timestamp(row.at),
        "model_id": row.model_id,
        "alias": row.alias,
        "action": row.action,
        "from_version": row.from_version,
        "to_version": row.to_version,
        "reverts_event_id": row.reverts_event_id,
        "actor": row.actor,
        "reason": row.reason,
        "forced": bool(row.forced),
        "details": row.details,
        "prev_hash": row.prev_hash,
    }


def timestamp(at: datetime) -> str:
    """``at`` as the canonical form writes it: UTC, always with microseconds (a naive time is UTC)."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def link(connection: Connection, entry, *, head: Table, entries: Table) -> None:
    """Join ``entry`` (a history row about to be inserted) to the chain, in the writer's transaction.

    Locks the head, gives the entry the next id, fills what the insert would default (so the stored
    row is exactly what is hashed), hashes it and moves the head to it.
    """
    current = _locked_head(connection, head)
    entry.id = _next_id(connection, entries, current.last_id)
    if entry.at is None:
        entry.at = datetime.now(timezone.utc)
    entry.reason = entry.reason or ""
    entry.forced = bool(entry.forced)
    # as it will read back: tuples become lists, numeric keys strings, figures that are not finite null
    entry.details = json.loads(finite_json.dumps(entry.details)) if entry.details is not None else None
    entry.prev_hash = current.hash
    entry.hash = entry_hash(fields_of(entry))
    connection.execute(
        update(head).where(head.c.id == HEAD_ID)
        .values(entries=head.c.entries + 1, last_id=entry.id, hash=entry.hash)
    )


def _locked_head(connection: Connection, head: Table):
    """The head row, locked until the transaction ends; made (as the empty chain's) when missing."""
    if connection.dialect.name == "sqlite":
        # A write first: from here this transaction is SQLite's one writer, so what it reads stays true.
        connection.execute(update(head).where(head.c.id == HEAD_ID).values(entries=head.c.entries))
    query = select(head.c.entries, head.c.last_id, head.c.hash).where(head.c.id == HEAD_ID).with_for_update()
    row = connection.execute(query).one_or_none()
    if row is None:
        _make_head(connection, head)
        row = connection.execute(query).one()
    return row


def _make_head(connection: Connection, head: Table) -> None:
    """The head of an empty chain, unless a concurrent writer made it first (a database emptied by hand)."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(
        insert(head).values(id=HEAD_ID, entries=0, last_id=None, hash=GENESIS).on_conflict_do_nothing()
    )


def _next_id(connection: Connection, entries: Table, last_id: int | None) -> int:
    """The entry's id, handed out under the head's lock so ids follow the chain's order."""
    if connection.dialect.name == "postgresql":
        return connection.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id'))"), {"table": entries.name}
        ).scalar_one()
    highest = connection.execute(select(func.max(entries.c.id))).scalar()
    # past the head's too: an id whose entry was removed from the end is never handed out again
    return max(highest or 0, last_id or 0) + 1
