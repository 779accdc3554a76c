"""A rollout's figures: counted per process, flushed to the database, summed over every process.

Each process keeps running totals per (rollout, role, version) and writes them whole, as one
upsert per row keyed by (rollout, process, role, version), at most every ``FLUSH_SECONDS``. A
flush replaces the process's row with its totals, so a repeated or lost flush never double-counts;
the figures a reader sees are the sums over every process's rows. Latencies are counted in fixed
buckets, so percentiles can be computed from the summed buckets. When a rollout ends its rows are
folded into one per role and version (:func:`fold`), and processes stop counting it.
"""
import logging
import os
import socket
import threading
import time
import uuid
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields

from sqlalchemy import delete, select

from registry.db import db, upsert_insert, write_transaction
from registry.serving.key_units import KeyUnits, is_epoch, merged
from registry.serving.routing import PRIMARY
from registry.tables import Rollout, RolloutStats, utcnow

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
# How long alias answers given outside any rollout are kept: a rollout that reaches this process later
# than it started (within ALIAS_REFRESH_SECONDS, or a replica's clock apart) counts those since its start.
RECENT_SECONDS = 10.0
RECENT_MAX = 50_000  # per alias, so a flood cannot grow it without bound
# Upper bounds in milliseconds; the last bucket counts everything slower.
LATENCY_BUCKETS_MS = (0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000)
# Batch-size classes latencies are compared within (a batch of 1,000 rows is slower than one of 1 on any
# version): upper bounds in rows, the last class open.
ROW_CLASSES = (1, 10, 100, 1000)
TallyKey = tuple[int, str, int]  # (rollout id, role, version)
FOLDED = "(all processes)"  # the process of the rows an ended rollout's figures are folded into


@dataclass
class Tally:
    """Running totals of one role and version of a rollout in one process."""

    requests: int = 0  # answered, or failed by the server
    errors: int = 0  # the server's faults only
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    compared: int = 0
    dropped: int = 0
    rows: int = 0
    agreed: int = 0
    abs_diff_sum: float = 0.0
    abs_diff_max: float = 0.0
    abs_diff_sq_sum: float = 0.0
    refused: int = 0  # the caller's faults (its rows, its batch): never an error of the arm
    # What the gates weigh: every request, or under a sticky header each key's first KEY_WEIGHT (key_units).
    weighed: int = 0
    weighed_errors: int = 0
    latency_by_rows: dict[str, list[int]] = field(default_factory=dict)  # weighed answers' buckets per row class
    key_epoch: float | None = None  # the split the keys below were seen in (the rollout's epoch)
    key_sketch: str | None = None  # the distinct keys seen in it (key_units)

    def add(self, other: "Tally") -> None:
        """Add ``other``'s totals to these (the max is a max; keys are a union, of the newer split only)."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "latency_buckets":
                setattr(self, f.name, _added(mine, theirs))
            elif f.name == "latency_by_rows":
                setattr(self, f.name, {name: _added(mine.get(name, []), (theirs or {}).get(name, []))
                                       for name in {*mine, *(theirs or {})}})
            elif f.name == "abs_diff_max":
                setattr(self, f.name, max(mine, theirs))
            elif f.name not in ("key_epoch", "key_sketch"):
                setattr(self, f.name, mine + (theirs or 0))
        if other.key_epoch is not None and (self.key_epoch is None or other.key_epoch > self.key_epoch):
            self.key_epoch, self.key_sketch = other.key_epoch, other.key_sketch
        elif is_epoch(self.key_epoch, other.key_epoch):
            self.key_sketch = merged(self.key_sketch, other.key_sketch)

    def copy(self) -> "Tally":
        """An independent copy."""
        total = Tally()
        total.add(self)
        return total


def _added(mine: list[int], theirs: list[int]) -> list[int]:
    width = max(len(mine), len(theirs), len(LATENCY_BUCKETS_MS) + 1)
    return [a + b for a, b in zip(mine + [0] * (width - len(mine)), theirs + [0] * (width - len(theirs)))]


def row_class(rows: int) -> str:
    """The batch-size class of a request of ``rows`` rows: "1", "2-10", "11-100", "101-1000" or "1001+"."""
    low = 1
    for high in ROW_CLASSES:
        if rows <= high:
            return str(high) if low == high else f"{low}-{high}"
        low = high + 1
    return f"{low}+"


class FigureBook:
    """This process's tallies; request threads and the shadow worker add, the watcher flushes."""

    def __init__(self):
        self._tallies: dict[TallyKey, Tally] = {}
        self._units: dict[TallyKey, KeyUnits] = {}  # sticky rollouts: each arm's keys in this split
        self._dirty: set[TallyKey] = set()
        self._recent: dict[tuple[str, str], deque] = {}  # alias answers outside a rollout: (time, version, seconds, ok)
        self._lock = threading.Lock()
        self._instance = uuid.uuid4().hex[:8]

    @property
    def process_id(self) -> str:
        """Names this process (host, pid, app instance): a forked worker is another process."""
        return f"{socket.gethostname()}:{os.getpid()}:{self._instance}"

    def answered(self, key: TallyKey, seconds: float, ok: bool, *, rows: int = 1, unit: str | None = None,
                 epoch: float | None = None) -> bool:
        """Count one request answered (or failed by the server) by a primary or canary; whether the gates
        weigh it. ``unit`` is its sticky key under a sticky header (``NO_KEY`` without one), else None:
        then every request weighs; ``epoch`` names the rollout's split."""
        with self._lock:
            tally = self._tally(key)
            _count(tally, seconds, ok)
            if unit is not None:
                units = self._units.get(key)
                if units is None or units.epoch != epoch:
                    units = self._units[key] = KeyUnits(epoch)
                if not units.weigh(unit):
                    return False
            tally.weighed += 1
            tally.weighed_errors += 0 if ok else 1
            if ok:
                buckets = tally.latency_by_rows.setdefault(row_class(rows), [0] * (len(LATENCY_BUCKETS_MS) + 1))
                buckets[bisect_left(LATENCY_BUCKETS_MS, seconds * 1000.0)] += 1
            return True

    def refused(self, key: TallyKey) -> None:
        """Count one request refused for the caller's fault (its rows, its batch): no error of the arm."""
        with self._lock:
            self._tally(key).refused += 1

    def answered_unrouted(self, alias: tuple[str, str], version: int, *, seconds: float, ok: bool) -> None:
        """Keep, for a few seconds, an alias answer given while no rollout runs on the alias here."""
        now = time.time()
        with self._lock:
            recent = self._recent.get(alias)
            if recent is None:
                recent = self._recent[alias] = deque(maxlen=RECENT_MAX)
            recent.append((now, version, seconds, ok))
            while recent[0][0] < now - RECENT_SECONDS:
                recent.popleft()

    def adopt(self, alias: tuple[str, str], primary_version: int, rollout) -> None:
        """This process starts serving ``rollout`` on ``alias``: its primary answered the alias's requests
        since the rollout started, here too, before this process knew of it; count them for it."""
        with self._lock:
            recent = self._recent.pop(alias, ())
            if rollout.started_at is None:
                return
            for at, version, seconds, ok in recent:
                if at >= rollout.started_at and version == primary_version:
                    tally = self._tally((rollout.id, PRIMARY, version))
                    _count(tally, seconds, ok)  # figures only: neither its key nor its rows were kept

    def shadowed(self, key: TallyKey, *, rows: int = 0, agreed: int = 0, diffs: list[float] | None = None,
                 failed: bool = False, dropped: bool = False) -> None:
        """Count one shadow run: compared (with its rows), failed, or dropped from a full queue."""
        with self._lock:
            tally = self._tally(key)
            tally.dropped += dropped
            tally.errors += failed
            if not (failed or dropped):
                tally.compared += 1
                tally.rows += rows
                tally.agreed += agreed
                if diffs:
                    tally.abs_diff_sum += sum(diffs)
                    tally.abs_diff_sq_sum += sum(d * d for d in diffs)
                    tally.abs_diff_max = max(tally.abs_diff_max, max(diffs))

    def take_changed(self) -> dict[TallyKey, Tally]:
        """Copies of the tallies changed since the last call (with the keys their arms saw in this split)."""
        with self._lock:
            changed = {key: self._tallies[key].copy() for key in self._dirty}
            units = {key: self._units[key] for key in self._dirty if key in self._units}
            self._dirty.clear()
        for key, arm in units.items():
            changed[key].key_epoch, changed[key].key_sketch = arm.epoch, arm.sketch()
        return changed

    def give_back(self, keys) -> None:
        """Mark ``keys`` changed again (their flush failed)."""
        with self._lock:
            self._dirty |= set(keys)

    def forget(self, rollout_ids: set[int]) -> None:
        """Drop the tallies of rollouts that have ended: their figures are folded already."""
        with self._lock:
            self._tallies = {key: tally for key, tally in self._tallies.items() if key[0] not in rollout_ids}
            self._units = {key: units for key, units in self._units.items() if key[0] not in rollout_ids}
            self._dirty = {key for key in self._dirty if key[0] not in rollout_ids}

    def __len__(self) -> int:
        return len(self._tallies)

    def _tally(self, key: TallyKey) -> Tally:
        self._dirty.add(key)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = Tally()
        return tally


class FigureFlusher:
    """Writes one process's figures to the database: every ``FLUSH_SECONDS`` from the alias watcher's
    thread, and at once when a use case needs them current (completing or aborting a rollout)."""

    def __init__(self, book: FigureBook, session_scope: Callable[[], AbstractContextManager]):
        self._book = book
        self._session_scope = session_scope
        self._flushed_at = time.monotonic()

    def flush(self) -> None:
        """Write the changed tallies now; raises when the database cannot take them (they stay counted)."""
        with self._session_scope():
            flush(self._book)
        self._flushed_at = time.monotonic()

    def flush_last(self) -> None:
        """Flush before the process exits; a failure is logged (what was counted since the last flush is lost)."""
        try:
            self.flush()
        except Exception:
            log.exception("could not write the rollout figures before exiting; those counted since the last flush are lost")

    def flush_if_due(self) -> None:
        """Flush when the period has passed; a failure is logged and tried again at the next period."""
        if time.monotonic() - self._flushed_at < FLUSH_SECONDS:
            return
        try:
            self.flush()
        except Exception:
            self._flushed_at = time.monotonic()  # try again at the next period, not at every poll
            log.exception("could not write the rollout figures; they stay counted and are written later")


def _count(tally: Tally, seconds: float, ok: bool) -> None:
    tally.requests += 1
    tally.errors += 0 if ok else 1
    tally.latency_buckets[bisect_left(LATENCY_BUCKETS_MS, seconds * 1000.0)] += 1


def flush(book: FigureBook) -> int:
    """Write this process's changed tallies of running rollouts to the database; how many rows were written.

    Tallies of rollouts that have ended are dropped instead: their figures were folded when they ended.
    """
    changed = book.take_changed()
    if not changed:
        return 0
    try:
        with write_transaction():
            running = _running({rollout_id for rollout_id, _, _ in changed})
            for (rollout_id, role, version), tally in sorted(changed.items()):
                if rollout_id in running:
                    _upsert(book.process_id, rollout_id, role, version, tally)
    except BaseException:
        book.give_back(changed)
        raise
    book.forget({rollout_id for rollout_id, _, _ in changed} - running)
    return sum(1 for rollout_id, _, _ in changed if rollout_id in running)


def fold(rollout_id: int) -> None:
    """Replace an ending rollout's per-process rows by one row per role and version, in the caller's
    transaction (which has already written the rollout's end, so no process flushes it any more)."""
    totals = summed(rollout_id)
    db.session.execute(delete(RolloutStats).where(RolloutStats.rollout_id == rollout_id))
    for (role, version), tally in sorted(totals.items()):
        db.session.add(RolloutStats(
            rollout_id=rollout_id, process=FOLDED, role=role, version=version, updated_at=utcnow(),
            **{f.name: getattr(tally, f.name) for f in fields(tally)},
        ))


def _running(rollout_ids: set[int]) -> set[int]:
    """Which of ``rollout_ids`` have not ended; on PostgreSQL their rows are share-locked, so a rollout
    cannot end (and fold) between this check and the flush's writes."""
    query = select(Rollout.id).where(Rollout.id.in_(rollout_ids), Rollout.ended_at.is_(None)).with_for_update(read=True)
    return set(db.session.execute(query).scalars())


def _upsert(process: str, rollout_id: int, role: str, version: int, tally: Tally) -> None:
    totals = {f.name: getattr(tally, f.name) for f in fields(tally)}
    values = {"rollout_id": rollout_id, "process": process, "role": role, "version": version,
              "updated_at": utcnow(), **totals}
    statement = upsert_insert(RolloutStats).values(**values)
    db.session.execute(statement.on_conflict_do_update(
        index_elements=["rollout_id", "process", "role", "version"],
        set_={name: statement.excluded[name] for name in (*totals, "updated_at")},
    ))


def summed(rollout_id: int) -> dict[tuple[str, int], Tally]:
    """A rollout's totals per (role, version), summed over every process that flushed them."""
    totals: dict[tuple[str, int], Tally] = {}
    rows = db.session.execute(select(RolloutStats).where(RolloutStats.rollout_id == rollout_id)).scalars()
    for row in rows:
        tally = Tally(**{f.name: getattr(row, f.name) for f in fields(Tally)})
        tally.latency_by_rows = tally.latency_by_rows or {}  # rows written before it was counted
        totals.setdefault((row.role, row.version), Tally()).add(tally)
    return totals


def percentile_ms(buckets: list[int], fraction: float) -> float | None:
    """The latency under which ``fraction`` of the counted requests fell, interpolated in its bucket."""
    total = sum(buckets)
    if total == 0:
        return None
    rank, seen = fraction * total, 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            low = LATENCY_BUCKETS_MS[i - 1] if i > 0 else 0.0
            high = LATENCY_BUCKETS_MS[i] if i < len(LATENCY_BUCKETS_MS) else LATENCY_BUCKETS_MS[-1]
            return round(low + (high - low) * (rank - seen) / count, 3)
        seen += count
    return float(LATENCY_BUCKETS_MS[-1])
