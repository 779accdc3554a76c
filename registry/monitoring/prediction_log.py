"""The prediction log: a sample of the requests each model answered, written off the request path.

The prediction path only decides whether to keep a request (each model's share, errors always) and
puts it on a bounded queue, which never blocks: when the queue is full the entry is dropped and
counted (``registry_prediction_log_dropped_total``). One thread per process takes what is queued
every ``WRITE_SECONDS``, or at once when the queue is half full (a put wakes nobody otherwise:
waking the writer for every entry cost more than the writing), turns the rows into JSON and
inserts them in batches, and deletes what is older than the retention as it writes. It keeps the log
within its bytes (``PREDICTION_LOG_MAX_MB``, fairly per model: :mod:`registry.monitoring.log_bounds`),
checking whenever it wrote a fiftieth of the bound or ``check_seconds`` passed since it last did; and
it stops logging while the database's volume has less than ``PREDICTION_LOG_MIN_FREE_MB`` free, so that
the registry's own writes never meet a full disk. With an export, only rows the lake took are pruned: a
model whose rows wait for a lake that fails may go :data:`~registry.monitoring.log_bounds.OVERDRAFT` over
its share, and is then held (none of its answers logged) until an export succeeds. For the share of a
model's logged answers its ``explain`` setting asks for, the writer also explains the rows with the version
that answered them (:mod:`registry.monitoring.logged_explanations`), within a share of one core. Every model's
share is read again by the alias watcher when the registry changes (:meth:`PredictionLog.follow`),
so a new share reaches every worker and replica within ``ALIAS_REFRESH_SECONDS`` whatever the
traffic; a process without a watcher has its writer read them when requests come and the last
reading is older than a few seconds. On SQLite and PostgreSQL alike, from every worker and replica.
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import orjson
from sqlalchemy import select

from registry import tracing
from registry.db import db, end_read, write_transaction
from registry.monitoring import log_bounds
from registry.monitoring.log_bounds import MB, Usage
from registry.monitoring.logged_explanations import TimeBudget, explain_logged
from registry.monitoring.tables import LoggedPrediction
from registry.process.loop import Loop
from registry.serving.cache import ServableModel
from registry.serving.data_plane import Answer, Call, Failure
from registry.serving.explain_bounds import ExplainBounds
from registry.serving.explanations import Explanations
from registry.serving.routing import SHADOW
from registry.serving.shadow import ShadowJob
from registry.tables import RegisteredModel, utcnow
from registry.telemetry import (
    PREDICTION_LOG_DROPPED,
    PREDICTION_LOG_HELD,
    PREDICTION_LOG_EXPLAINED,
    PREDICTION_LOG_PAUSED,
    PREDICTION_LOG_PRUNED,
    PREDICTION_LOG_QUEUED,
    PREDICTION_LOG_SHARES_READ,
    PREDICTION_LOG_WRITTEN,
)

log = logging.getLogger(__name__)

BATCH = 100  # entries per insert: the writer holds the GIL while it binds them, so not too many at once
WRITE_SECONDS = 0.5  # how often the writer takes what is queued (flush and stop wake it at once)
CHECK_SHARE = 50  # the writer checks the bound whenever it wrote this fraction of it (1/50) since it last did
PART_BYTES = 1 * MB  # the most one insert writes: free space is looked at again before each
WRITE_COST = 2  # what a write may take of the volume for its bytes: SQLite's WAL holds the pages, then the table


def _draw(request_id: str, key: bytes) -> float:
    """A number in [0, 1) that is the same for the same id in every worker and replica sharing ``key``."""
    return int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8, key=key).digest()) / 2**64


@dataclass(frozen=True)
class Entry:
    """One request to log; ``rows`` are what the model saw (an array or a DataFrame), made JSON by the writer."""

    request_id: str
    model: str
    version: int
    alias: str | None
    route: str | None
    rows: object
    outputs: dict | None
    latency_ms: float
    status: int
    at: datetime
    weighed: bool = True  # whether a rollout's gates weigh it (False: its sticky key had sent its share)
    trace_id: str | None = None  # the request's trace (32 hex digits) when it was traced
    servable: ServableModel | None = None  # the loaded version that answered: what explains the rows, if drawn
    asked: Explanations | None = None  # the explanations the caller asked for, kept rather than computed again


@dataclass(frozen=True)
class LogSettings:
    """How much to keep, for how long, and how the writer paces itself."""

    default_sample: float  # PREDICTION_LOG_SAMPLE: the share of a model's requests kept unless it says otherwise
    retention_days: float  # PREDICTION_LOG_DAYS
    capacity: int = 10_000  # entries waiting at most; past it they are dropped and counted
    refresh_seconds: float = 2.0  # without a watcher to follow: how often requests have every model's share read again
    prune_seconds: float = 600.0  # how often what is past the retention is deleted
    max_mb: float = 256.0  # PREDICTION_LOG_MAX_MB: the most the whole log holds, shared fairly among models
    min_free_mb: float = 256.0  # PREDICTION_LOG_MIN_FREE_MB: under this free on the database's volume, nothing is logged
    database_url: str = ""  # where the database is: a SQLite file's volume is watched for free space
    check_seconds: float = 5.0  # the bound is checked at least this often while the writer writes
    export: bool = False  # PREDICTION_LOG_EXPORT is set: only rows that went to the lake are pruned
    # MAX_EXPLAIN_ROWS (a logged request's first rows are explained) and the rest of an explanation's bounds
    explain_bounds: ExplainBounds = ExplainBounds()


class PredictionLog:
    """Samples requests, queues them, and writes them from a thread of this process."""

    def __init__(self, settings: LogSettings, session_scope: Callable[[], AbstractContextManager],
                 chance: Callable[[], float] = random.random, draw_key: bytes = b"",
                 explain_reference: Callable[[ServableModel], np.ndarray | None] = lambda servable: None):
        self.settings = settings
        self._explain_reference = explain_reference  # a linear version's reference mean, as its callers' answers use
        self._session_scope = session_scope
        self._chance = chance
        self._draw_key = draw_key[:64]  # a secret of the deployment: callers cannot tell which ids are drawn
        self._shares: dict[str, float] = {}  # model -> its own share, where it set one
        self._explained: dict[str, float] = {}  # model -> the share of its logged answers explained, where it set one
        self._explaining = TimeBudget()  # the writer's time for explanations
        self._model_ids: dict[str, int] = {}
        self._queue: queue.Queue[Entry] = queue.Queue(settings.capacity)
        self._writer = Loop("prediction-log", WRITE_SECONDS, self._turn)
        self._pruned_at = float("-inf")
        self._refresh_wanted = threading.Event()
        self._refreshed_at = float("-inf")
        self._followed = False  # the alias watcher reads the shares (follow): requests need not ask
        self._idle = threading.Condition()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._paused = False  # the database's volume is short of space: nothing is logged
        self._held: frozenset[str] = frozenset()  # models past their overdraft, waiting for the lake: not logged
        self._unchecked_bytes = 0  # written since the bound was last checked
        self._left_bytes = 0  # what the log held after this writer's last check
        self._checked_at = float("-inf")
        self.usage: Usage | None = None  # what the log held at this process's last check of the bound, before pruning

    def share(self, model: str) -> float:
        """The share of ``model``'s requests kept (its own, else the default)."""
        return self._shares.get(model, self.settings.default_sample)

    def keeps(self, model: str, status: int, request_id: str | None = None) -> bool:
        """Whether to log this answer of ``model``: drawn by its share (an error always is). Asked before
        the entry is made, so the answers not drawn cost the request nothing more. With ``request_id``
        the draw is the id's own, so every answer under one id is kept or none is: a stranger who sends
        a known id again is never the only answer logged under it (nor the one its label reaches)."""
        if (not self._followed and time.monotonic() - self._refreshed_at >= self.settings.refresh_seconds
                and not self._refresh_wanted.is_set()):
            self._refresh_wanted.set()  # the writer reads the shares again; this request uses the ones it has
            self._ensure_writer()
        if self._paused or model in self._held:
            self._ensure_writer()  # it looks again every turn, and logging resumes with space (or the lake)
            return False
        if status >= 400:
            return True
        share = self.share(model)
        return share >= 1 or (share > 0 and (self._chance() if request_id is None else _draw(request_id, self._draw_key)) < share)

    def offer(self, entry: Entry) -> None:
        """Queue ``entry`` (one ``keeps`` said yes to); never blocks, never raises."""
        self._ensure_writer()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            PREDICTION_LOG_DROPPED.inc()
        else:
            PREDICTION_LOG_QUEUED.inc()
            if self._queue.qsize() * 2 >= self.settings.capacity:
                self._writer.wake()  # half full: the writer goes now rather than at its next turn

    def answered(self, call: Call, answer: Answer) -> bool:
        """Log an answer of the data plane if the model's share draws it; whether it was kept (under
        the request's id)."""
        result = answer.prediction
        if not self.keeps(call.name, 200, call.request_id):
            return False
        with tracing.span("log"):
            outputs = {"predictions": result.predictions}
            if result.probabilities is not None:
                outputs |= {"probabilities": result.probabilities, "classes": result.classes}
            self.offer(Entry(
                request_id=call.request_id, model=call.name, version=result.version, alias=call.alias,
                route=result.route, rows=result.rows, outputs=outputs, latency_ms=answer.seconds * 1000, status=200,
                at=utcnow(), weighed=result.weighed, trace_id=tracing.trace_id(), servable=result.servable,
                asked=result.explanations,
            ))
        return True

    def failed(self, call: Call, failure: Failure) -> None:
        """Log a failure of the data plane (every one is kept); not one before a version was found."""
        if failure.served_by is None or not self.keeps(call.name, failure.status, call.request_id):
            return
        version, route, _ = failure.served_by
        error = failure.error
        with tracing.span("log"):
            self.offer(Entry(
                request_id=call.request_id, model=call.name, version=version, alias=call.alias, route=route,
                rows=None, outputs={"detail": getattr(error, "detail", None) or str(error)},
                latency_ms=failure.seconds * 1000, status=failure.status, at=utcnow(), trace_id=tracing.trace_id(),
            ))

    def log_shadow(self, job: ShadowJob, *, rows: object, predictions: list, seconds: float) -> None:
        """Log a shadow run under its caller's request id, when the caller's answer was logged: the
        shadow version's rows, so that labels reach it too (a ShadowRunner observer)."""
        if job.request_id is None:
            return
        self.offer(Entry(
            request_id=job.request_id, model=job.shadow.model, version=job.shadow.version, alias=job.alias, route=SHADOW,
            rows=rows, outputs={"predictions": predictions}, latency_ms=seconds * 1000, status=200, at=utcnow(),
            trace_id=tracing.id_of(job.trace),
            servable=job.shadow,
        ))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (or ``timeout`` passes); whether it was."""
        deadline = time.monotonic() + timeout
        self._writer.wake()
        with self._idle:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        self.flush(timeout)
        self._writer.stop(timeout)

    def follow(self, observe_changes: Callable[[Callable[[], None]], None]) -> None:
        """Have the shares read by whoever ``observe_changes`` registers with (the alias watcher's
        :meth:`~registry.serving.server.ModelServer.observe_changes`): at the worker's start and within
        ``ALIAS_REFRESH_SECONDS`` of any change, rather than when requests come."""
        observe_changes(self.refresh)
        self._followed = True

    def refresh(self) -> None:
        """Read every model's share and id again."""
        started, read_at = time.monotonic(), time.time()
        with self._session_scope():
            rows = _model_rows()
        self._shares = {name: share for name, _, share, _ in rows if share is not None}
        self._explained = {name: share for name, _, _, share in rows if share}
        self._model_ids = {name: model_id for name, model_id, _, _ in rows}
        self._refreshed_at = started
        PREDICTION_LOG_SHARES_READ.labels(str(os.getpid())).set(read_at)

    def free_space_warning(self, writing: int = 0) -> str | None:
        """Why nothing is logged now, checked now: a write of the log (``writing`` bytes, PART_BYTES at
        least) could take the database's volume under PREDICTION_LOG_MIN_FREE_MB free. None while it may log."""
        free = log_bounds.free_bytes(self.settings.database_url)
        floor = self.settings.min_free_mb * MB
        self._paused = free is not None and free - WRITE_COST * max(writing, PART_BYTES) < floor
        PREDICTION_LOG_PAUSED.set(int(self._paused))
        if not self._paused:
            return None
        return (f"the database's volume has {free / MB:.1f} MB free, and a write of the log could take it under "
                f"PREDICTION_LOG_MIN_FREE_MB={self.settings.min_free_mb:g}: the prediction log records nothing "
                "until space is freed, so that the registry's own writes do not fail")

    def bound_warning(self) -> str | None:
        """That the log is near PREDICTION_LOG_MAX_MB (as this process last measured it), so that its oldest
        rows go before PREDICTION_LOG_DAYS; None when it is not, or this process never measured it."""
        bound = self.settings.max_mb * MB
        if self.usage is None or self.usage.bytes < log_bounds.NEAR * bound:
            return None
        return (f"the prediction log holds {self.usage.bytes / MB:.1f} MB of PREDICTION_LOG_MAX_MB="
                f"{self.settings.max_mb:g}: each model's oldest rows are pruned before PREDICTION_LOG_DAYS; raise "
                "PREDICTION_LOG_MAX_MB, or lower the busiest models' sample")

    def held_warning(self) -> str | None:
        """That some models' answers are not logged because their rows wait for the lake (as this process
        last checked); None when none are."""
        if not self._held:
            return None
        names = ", ".join(repr(name) for name in sorted(self._held))
        return (f"the prediction log records nothing of {names}: past {log_bounds.OVERDRAFT:.0%} of its share of "
                f"PREDICTION_LOG_MAX_MB={self.settings.max_mb:g} with rows PREDICTION_LOG_EXPORT failed to take; it "
                "logs again once an export succeeds")

    def enforce(self) -> None:
        """Keep the log within PREDICTION_LOG_MAX_MB now (fair shares, oldest first), and hold the models
        whose rows wait for the lake past their overdraft."""
        self._checked_at, self._unchecked_bytes = time.monotonic(), 0
        with self._session_scope():
            check = log_bounds.enforce(self.settings.max_mb, exported_only=self.settings.export)
        self.usage, self._left_bytes = check.found, check.left.bytes
        newly, released = check.overdrawn - self._held, self._held - check.overdrawn
        self._held = check.overdrawn
        for name in released:
            PREDICTION_LOG_HELD.labels(name).set(0)
        for name in check.overdrawn:
            PREDICTION_LOG_HELD.labels(name).set(1)
        if newly:
            log.warning("%s", self.held_warning())

    def _check_due(self) -> bool:
        """Whether to check the bound now: a fiftieth of it written since the last check, what this writer
        wrote since would take the log past it, or ``check_seconds`` passed."""
        bound = self.settings.max_mb * MB
        return (self._unchecked_bytes * CHECK_SHARE >= bound or self._left_bytes + self._unchecked_bytes > bound
                or time.monotonic() - self._checked_at >= self.settings.check_seconds)

    def _ensure_writer(self) -> None:
        if self._writer.running:
            return
        with self._lock:
            if self._writer.running:
                return
            # A fresh queue after a fork: the parent's thread did not come along, nor should its entries.
            self._queue = queue.Queue(self.settings.capacity)
            self._writer.start()

    def _turn(self) -> bool:
        """Write a batch of what is queued; True when a whole batch went (more is waiting: no pause)."""
        batch = self._take()
        try:
            if self._refresh_wanted.is_set():
                self._refresh_wanted.clear()
                self.refresh()
            if self._held and time.monotonic() - self._checked_at >= self.settings.check_seconds:
                self.enforce()  # nothing of a held model is written: see whether the lake took its rows
            if self.free_space_warning() is not None:
                PREDICTION_LOG_DROPPED.inc(len(batch))  # queued before the volume ran short
            elif batch:
                self._write(batch)
                if time.monotonic() - self._pruned_at >= self.settings.prune_seconds:
                    self._pruned_at = time.monotonic()
                    self.prune()
            if log_bounds.owes_give_back():  # a prune put it off: given back within GIVE_BACK_SECONDS
                with self._session_scope():
                    log_bounds.give_back()
        except Exception:
            log.exception("the prediction log could not write %d entries; they are dropped", len(batch))
            PREDICTION_LOG_DROPPED.inc(len(batch))
        finally:
            for _ in batch:
                self._queue.task_done()
            with self._idle:
                self._idle.notify_all()
        return len(batch) == BATCH

    def _take(self) -> list[Entry]:
        batch: list[Entry] = []
        while len(batch) < BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[Entry]) -> None:
        """Insert ``batch``, a transaction per part of at most a fiftieth of the bound and PART_BYTES (the
        whole batch but for large rows), checking the bound after each part that makes one due. Before each
        part the volume's free space is looked at again, counting the part: where it would leave less than
        PREDICTION_LOG_MIN_FREE_MB, the rest is dropped (and the log pauses), so that the log passes the
        floor by no more than what the other writers write at that moment. The rows of a model held
        meanwhile (queued before its hold) are dropped, so the hold bounds what was queued too."""
        missing = {entry.model for entry in batch} - set(self._model_ids)
        if missing:
            self.refresh()
        explained = [self._explanations(entry) for entry in batch]
        with self._session_scope():
            statement, at = _insert_for(db.engine.dialect)
            rows = [_row(entry, self._model_ids[entry.model], at, explanations)
                    for entry, explanations in zip(batch, explained) if entry.model in self._model_ids]
            parts = _parts(rows, min(self.settings.max_mb * MB / CHECK_SHARE, PART_BYTES))
            for index, part in enumerate(parts):
                if self.free_space_warning(writing=sum(row[-1] for row in part)) is not None:
                    PREDICTION_LOG_DROPPED.inc(sum(len(left) for left in parts[index:]))
                    return
                if self._held:
                    held_ids = {self._model_ids.get(name) for name in self._held}
                    kept = [row for row in part if row[0] not in held_ids]
                    PREDICTION_LOG_DROPPED.inc(len(part) - len(kept))
                    if not kept:
                        continue
                    part = kept
                with write_transaction() as session:
                    session.connection().exec_driver_sql(statement, part)
                self._unchecked_bytes += sum(row[-1] for row in part)
                PREDICTION_LOG_WRITTEN.inc(len(part))
                if self._check_due():
                    self.enforce()

    def _explanations(self, entry: Entry) -> dict | None:
        """The stored explanations of ``entry``'s rows when its model's ``explain`` share draws it (by its request
        id, as the sample does, so every answer under one id is explained or none is); None otherwise."""
        share = self._explained.get(entry.model, 0.0)
        if not share or entry.status != 200 or entry.servable is None or entry.rows is None:
            return None
        if share < 1 and _draw(f"explain:{entry.request_id}", self._draw_key) >= share:
            return None
        if entry.asked is None and not self._explaining.allows():
            PREDICTION_LOG_EXPLAINED.labels("skipped").inc()
            return None
        started = time.perf_counter()
        try:
            found = explain_logged(entry.servable, entry.rows, bounds=self.settings.explain_bounds, asked=entry.asked,
                                   reference=self._explain_reference)
        except Exception:  # a fault of the explainer must not cost the log its rows: they are kept without
            log.exception("version %s of %r could not explain a logged answer; it is logged without", entry.version,
                          entry.model)
            found = None
        finally:
            self._explaining.spend(time.perf_counter() - started)
        PREDICTION_LOG_EXPLAINED.labels("explained" if found is not None else "unexplainable").inc()
        return found

    def prune(self) -> int:
        """Delete what is older than the retention (and went to the lake, when it is exported), a bounded
        batch at a time; how many rows went."""
        cutoff = utcnow() - timedelta(days=self.settings.retention_days)
        old = LoggedPrediction.at < cutoff
        with self._session_scope():
            removed = log_bounds.delete_batches(log_bounds.exported(old) if self.settings.export else old)
            if removed:
                PREDICTION_LOG_PRUNED.labels("age").inc(removed)
                log_bounds.give_back()
        return removed


def _parts(rows: list[tuple], most_bytes: float) -> list[list[tuple]]:
    """``rows`` in consecutive parts of at most ``most_bytes`` each (a row's size is its last value), a row at least."""
    parts: list[list[tuple]] = []
    size = most_bytes
    for row in rows:
        if size + row[-1] > most_bytes:
            parts.append([])
            size = 0
        parts[-1].append(row)
        size += row[-1]
    return parts


def _model_rows() -> list[tuple[str, int, float | None, float | None]]:
    """(name, id, own share, share of logged answers explained) of every model."""
    query = select(RegisteredModel.name, RegisteredModel.id, RegisteredModel.prediction_log_sample,
                   RegisteredModel.prediction_log_explain)
    found = [tuple(row) for row in db.session.execute(query).all()]
    end_read()
    return found


# The writer holds the GIL while it turns entries into rows, and every request thread of the worker
# waits for it when it comes back from a socket call meanwhile: rows are made with orjson and passed
# to the driver as they are, without SQLAlchemy's per-value processing (which cost the predict route
# a quarter of its throughput at a 100 % share). The SQL is the table's own insert, compiled once.
_COLUMNS = ("model_id", "version", "request_id", "alias", "route", "inputs", "outputs", "latency_ms", "status", "at",
            "weighed", "trace_id", "explanations", "bytes")  # bytes last: the writer's parts read a row's size there
_JSON_COLUMNS = {"inputs", "outputs", "explanations"}
_inserts: dict[str, tuple[str, Callable]] = {}


def _insert_for(dialect) -> tuple[str, Callable]:
    """The driver-level insert of one logged request on ``dialect``, and how its time is bound there."""
    found = _inserts.get(dialect.name)
    if found is None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        cast = "::json" if dialect.name == "postgresql" else ""
        values = ", ".join(mark + (cast if column in _JSON_COLUMNS else "") for column in _COLUMNS)
        statement = f"INSERT INTO {LoggedPrediction.__tablename__} ({', '.join(_COLUMNS)}) VALUES ({values})"
        found = _inserts[dialect.name] = statement, LoggedPrediction.__table__.c.at.type.bind_processor(dialect)
    return found


def _row(entry: Entry, model_id: int, at: Callable | None, explanations: dict | None = None) -> tuple:
    inputs = _json(_jsonable(entry.rows) if not isinstance(entry.rows, np.ndarray) else entry.rows)
    outputs = _json(entry.outputs)
    explained = _json(explanations)
    size = log_bounds.row_bytes(inputs=inputs, outputs=outputs, request_id=entry.request_id, alias=entry.alias,
                                route=entry.route, trace_id=entry.trace_id, explanations=explained)
    return (model_id, entry.version, entry.request_id, entry.alias, entry.route, inputs, outputs,
            entry.latency_ms, entry.status, at(entry.at) if at is not None else entry.at, entry.weighed,
            entry.trace_id, explained, size)


def _json(value: object) -> str | None:
    """JSON text of a value (NumPy arrays and scalars too; NaN and infinities become null)."""
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _jsonable(rows: object) -> list | None:
    """Rows as lists of plain values, in signature order."""
    if rows is None:
        return None
    if isinstance(rows, np.ndarray):
        return rows.tolist()
    values = getattr(rows, "values", None)  # a DataFrame
    if isinstance(values, np.ndarray):
        return [[_plain(value) for value in row] for row in values.tolist()]
    return rows if isinstance(rows, list) else None


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value
