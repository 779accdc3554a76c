"""The prediction log's old rows, written to a lake as Parquet before they are pruned (``PREDICTION_LOG_EXPORT``).

One process of the fleet exports (whoever holds the ``prediction-log-export`` lease), every
``PREDICTION_LOG_EXPORT_SECONDS``. Per model it writes, oldest first, the rows that pruning will
delete next: those older than ``PREDICTION_LOG_DAYS`` (once the oldest is an hour past it, so files
hold an hour or more), and those past the newest :data:`KEEP_UNEXPORTED` of the model's share of
``PREDICTION_LOG_MAX_MB`` (once they come to :data:`CHUNK` of it), ahead of the byte bound, which
prunes down to 90 % of the share. Rows go with their labels as they are at the export.

The lake is laid out hive style, a Parquet file per model, day and step, with a manifest per model
(:mod:`registry.monitoring.lake_files`).

Exactly once: rows are exported in id order (ids are never handed out twice, nor committed out of
order past the mark: :func:`settled_id`), and each model's high-water mark is in the database
(:class:`~registry.monitoring.tables.LogExport`). Before files are written the rows are named
(``pending_id``); an export cut short (a failure, a crash, a lost lease) is done again over the same
rows into the same file names, so it replaces what it had written, never adds to it. Pruning deletes
no row past the mark: a failed export keeps its rows in the database, and is tried again at the next
turn, counted in ``registry_prediction_log_export_failures_total`` and said in ``/readyz``.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from typing import TYPE_CHECKING

from sqlalchemy import Text, cast, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from registry.db import db, end_read, on_postgresql, write_transaction
from registry.monitoring import log_bounds
from registry.monitoring.lake import MANIFEST, Lake, LakeUnavailable, location_of
from registry.monitoring.tables import LogExport, LoggedPrediction
from registry.tables import RegisteredModel, utcnow
from registry.telemetry import PREDICTION_LOG_EXPORT_FAILURES, PREDICTION_LOG_EXPORTED

if TYPE_CHECKING:  # pandas and pyarrow are imported by the exporting process alone, when it exports
    import pandas as pd

log = logging.getLogger(__name__)

LEASE = "prediction-log-export"
KEEP_UNEXPORTED = 0.7  # of a model's share: its older rows are exported ahead of the byte bound (which keeps 0.9)
CHUNK = 0.1  # of a model's share: rows past KEEP_UNEXPORTED are exported once they come to this much
AGE_BATCH = timedelta(hours=1)  # rows past PREDICTION_LOG_DAYS are exported once the oldest is this much past it
FILE_BYTES = 16 * log_bounds.MB  # what the rows of one export step count for at most (log_bounds.row_bytes)
FILE_ROWS = 50_000  # rows of one export step at most
LOCK_TIMEOUT_MS = 2000  # PostgreSQL: how long the exporter waits for the log's writers to commit, a try at a time
LOCK_PAUSE_SECONDS = 0.25  # between tries
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout that ran out



@dataclass(frozen=True)
class ExportSettings:
    """Where the rows go and what pruning will want next."""

    where: str  # PREDICTION_LOG_EXPORT
    retention_seconds: float  # PREDICTION_LOG_DAYS
    max_mb: float  # PREDICTION_LOG_MAX_MB
    every_seconds: float  # PREDICTION_LOG_EXPORT_SECONDS; a turn exports for at most this long


@dataclass(frozen=True)
class Exported:
    """One model's rows exported in one step: how many, into which files."""

    model: str
    rows: int
    files: list[str]


@dataclass(frozen=True)
class ExportState:
    """Where a model's old rows went: the lake's folder and manifest, how many, and before when every row went."""

    location: str
    manifest: str
    rows: int
    before: datetime | None


class LogExporter:
    """The export of one app: its settings, its lake (opened by the process that exports with it: an S3
    client does not survive a fork), and what this process last read of the models whose export fails."""

    def __init__(self, settings: ExportSettings, open_lake: Callable[[], Lake]):
        self.settings = settings
        self.location = location_of(settings.where)
        self._open_lake = open_lake
        self._lakes: dict[int, Lake] = {}
        self.failing: list[tuple[str, int, datetime, str]] = []  # (model, failures, since, error), read by refresh

    def turn(self) -> list[Exported]:
        """Export what is due now (call it holding the lease), then prune what the byte bound wanted and
        could not have before: the writers check only as they write, and traffic may have stopped."""
        pid = os.getpid()
        if pid not in self._lakes:
            self._lakes = {pid: self._open_lake()}
        done = export_due(self.settings, self._lakes[pid])
        if done:
            log_bounds.enforce(self.settings.max_mb, exported_only=True)
        self.refresh()
        return done

    def refresh(self) -> None:
        """Read again which models' exports fail (every process, at each turn of its leased loop: /readyz
        reads it without waiting on the database)."""
        self.failing = failing()


def export_due(settings: ExportSettings, lake: Lake) -> list[Exported]:
    """Export every model's rows that pruning will want next (call it holding the lease); what was exported.
    A model whose export fails is recorded as failing and the others go on."""
    import pyarrow as pa  # here: a worker that never exports (most of them) need not import it
    # Within the period (the lease lasts three); a turn run by hand (a period of 0) has a minute.
    deadline = time.monotonic() + (settings.every_seconds or 60.0)
    settled = settled_id(deadline)
    if settled is None:
        log.warning("the prediction log was locked by its writers, pruning or a vacuum for all of this export's "
                    "turn; it is exported at the next turn")
        return []
    held, given = log_bounds.shares(settings.max_mb)
    models = dict(db.session.execute(select(RegisteredModel.name, RegisteredModel.id)
                                     .where(RegisteredModel.name.in_(list(held.models)))).all())
    end_read()
    done = []
    for name, model_id in sorted(models.items()):
        try:
            done += _export_model(lake, name, model_id, due_id(model_id, share=given[name], settings=settings, settled=settled), deadline)
        except (LakeUnavailable, OSError, pa.ArrowException) as exc:
            _failed(model_id, str(exc) if isinstance(exc, LakeUnavailable) else f"{type(exc).__name__}: {exc}")
            log.warning("the prediction log of %r could not be exported to %s: %s; its rows stay in the "
                        "database and the export is tried again", name, lake.location, exc)
    return done


def settled_id(deadline: float) -> int | None:
    """The largest id of the log below which no insert is still uncommitted: on PostgreSQL a moment's
    SHARE lock waits for the writers in flight (their ids come from a sequence, and commit out of order);
    SQLite's writers take turns. A VACUUM (pruning's, or autovacuum's) holds off the lock too: it is tried
    again, LOCK_TIMEOUT_MS at a time, until ``deadline`` (the log's writers queue behind a waiting lock: they
    go between tries); None when it was never had."""
    while True:
        try:
            with write_transaction() as session:
                if on_postgresql():
                    session.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
                    session.execute(text(f"LOCK TABLE {LoggedPrediction.__tablename__} IN SHARE MODE"))
                return session.execute(select(func.max(LoggedPrediction.id))).scalar() or 0
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            if time.monotonic() >= deadline:
                return None
            time.sleep(LOCK_PAUSE_SECONDS)  # the writers queued behind the wait go first


def due_id(model_id: int, *, share: int, settings: ExportSettings, settled: int) -> int:
    """The newest row of the model to export now (its export mark when nothing is due)."""
    state = db.session.get(LogExport, model_id)
    mark = state.exported_id if state is not None else 0
    if state is not None and state.pending_id is not None:
        return state.pending_id  # an export cut short: the same rows again
    due = mark
    ahead = log_bounds.cutoff_id(model_id, int(share * KEEP_UNEXPORTED))
    if ahead is not None and ahead > mark and _bytes_between(model_id, mark, ahead) >= share * CHUNK:
        due = ahead
    cutoff = utcnow() - timedelta(seconds=settings.retention_seconds)
    oldest = db.session.execute(select(func.min(LoggedPrediction.at))
                                .where(LoggedPrediction.model_id == model_id, LoggedPrediction.id > mark)).scalar()
    if oldest is not None and oldest < cutoff - AGE_BATCH:
        old = db.session.execute(select(func.max(LoggedPrediction.id))
                                 .where(LoggedPrediction.model_id == model_id, LoggedPrediction.at < cutoff)).scalar()
        due = max(due, old or 0)
    end_read()
    return min(due, settled)


def _bytes_between(model_id: int, after: int, upto: int) -> int:
    """What the model's rows (after, upto] count for."""
    return db.session.execute(
        select(func.coalesce(func.sum(LoggedPrediction.bytes), 0))
        .where(LoggedPrediction.model_id == model_id, LoggedPrediction.id > after, LoggedPrediction.id <= upto)
    ).scalar()


def exported_state(name: str, lake_location: str) -> ExportState | None:
    """Where ``name``'s older rows went, or None while none did."""
    found = db.session.execute(
        select(LogExport.rows, LogExport.before).join(RegisteredModel, RegisteredModel.id == LogExport.model_id)
        .where(RegisteredModel.name == name)
    ).first()
    end_read()
    if found is None or not found.rows:
        return None
    folder = f"{lake_location}/model={name}"
    return ExportState(location=folder, manifest=f"{folder}/{MANIFEST}", rows=found.rows, before=found.before)


def failing() -> list[tuple[str, int, datetime, str]]:
    """(model, failures, since, error) of every model whose last export failed."""
    found = db.session.execute(
        select(RegisteredModel.name, LogExport.failures, LogExport.failed_at, LogExport.error)
        .join(RegisteredModel, RegisteredModel.id == LogExport.model_id).where(LogExport.failures > 0)
        .order_by(RegisteredModel.name)
    ).all()
    end_read()
    return [tuple(row) for row in found]


def _export_model(lake: Lake, name: str, model_id: int, due: int, deadline: float) -> list[Exported]:
    """Export the model's rows up to ``due``, a step at a time, until done or ``deadline``."""
    done = []
    while time.monotonic() < deadline:
        mark, upto = _claim_step(model_id, due)
        if upto is None:
            break
        files, rows, before = _write_step(lake, name, model_id, mark, upto)
        _advance(model_id, upto, rows, before)
        PREDICTION_LOG_EXPORTED.inc(rows)
        done.append(Exported(name, rows, files))
    return done


def _locked_state(session: Session, model_id: int) -> LogExport:
    """The model's export state, locked for this transaction; made (nothing exported yet) where it has none."""
    state = session.get(LogExport, model_id, with_for_update=True)
    if state is None:
        state = LogExport(model_id=model_id, exported_id=0, rows=0, failures=0)
        session.add(state)
    return state


def _claim_step(model_id: int, due: int) -> tuple[int, int | None]:
    """The model's mark, and the last row of its next step (named in ``pending_id`` before anything is
    written); None when nothing is due."""
    with write_transaction() as session:
        state = _locked_state(session, model_id)
        if state.pending_id is not None:
            return state.exported_id, state.pending_id
        if due <= state.exported_id:
            return state.exported_id, None
        sizes = session.execute(
            select(LoggedPrediction.id, LoggedPrediction.bytes)
            .where(LoggedPrediction.model_id == model_id, LoggedPrediction.id > state.exported_id,
                   LoggedPrediction.id <= due)
            .order_by(LoggedPrediction.id).limit(FILE_ROWS)
        ).all()
        if not sizes:
            state.exported_id = due  # nothing of the model in between (pruned before the export was set)
            return state.exported_id, None
        upto, total = sizes[0][0], 0
        for row_id, size in sizes:
            if total and total + size > FILE_BYTES:
                break
            upto, total = row_id, total + size
        state.pending_id = upto
        return state.exported_id, upto


def _write_step(lake: Lake, name: str, model_id: int, mark: int, upto: int) -> tuple[list[str], int, datetime | None]:
    """Write the rows (mark, upto] as one file per day, then the manifest; the files, the rows, and the
    oldest time among the model's rows left (None when none is)."""
    from registry.monitoring import lake_files

    frame = _rows(model_id, mark, upto)
    before = db.session.execute(select(func.min(LoggedPrediction.at))
                                .where(LoggedPrediction.model_id == model_id, LoggedPrediction.id > upto)).scalar()
    end_read()
    entries = lake_files.write_days(lake, name, frame)
    lake_files.add_to_manifest(lake, name, upto=upto, entries=entries)
    left = before if before is not None else frame["at"].max().to_pydatetime()
    return [entry["path"] for entry in entries], len(frame), left


def _rows(model_id: int, mark: int, upto: int) -> pd.DataFrame:
    """The model's rows (mark, upto] as the export's frame: JSON columns as the text the log holds."""
    import pandas as pd

    from registry.monitoring import lake_files
    columns = [LoggedPrediction.id, LoggedPrediction.request_id, LoggedPrediction.version, LoggedPrediction.alias,
               LoggedPrediction.route, cast(LoggedPrediction.inputs, Text), cast(LoggedPrediction.outputs, Text),
               LoggedPrediction.latency_ms, LoggedPrediction.status, LoggedPrediction.at,
               cast(LoggedPrediction.label, Text), LoggedPrediction.labelled_at, cast(LoggedPrediction.explanations, Text)]
    found = db.session.execute(
        select(*columns).where(LoggedPrediction.model_id == model_id, LoggedPrediction.id > mark,
                               LoggedPrediction.id <= upto).order_by(LoggedPrediction.id)
    ).all()
    end_read()
    frame = pd.DataFrame([tuple(row) for row in found], columns=lake_files.SCHEMA.names)
    for column in ("label", "explanations"):  # a JSON null is none; text or missing, as a Parquet reader gives them back
        frame[column] = frame[column].where(frame[column] != "null", None).astype("str")
    for column in ("at", "labelled_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.as_unit("us")
    return frame


def _advance(model_id: int, upto: int, rows: int, before: datetime | None) -> None:
    """Record the step done: the mark moves to ``upto``, and the model's export is no longer failing."""
    with write_transaction() as session:
        state = session.get(LogExport, model_id, with_for_update=True)
        if state.pending_id != upto:
            return  # another exporter (a lease lost meanwhile) did this step again, and recorded it
        state.exported_id, state.pending_id = upto, None
        state.rows += rows
        state.before, state.exported_at = before, utcnow()
        state.failures, state.failed_at, state.error = 0, None, None


def _failed(model_id: int, error: str) -> None:
    """Count a failed attempt (in the database, for every replica's /readyz and /metrics, and here)."""
    PREDICTION_LOG_EXPORT_FAILURES.inc()
    db.session.rollback()
    with write_transaction() as session:
        state = _locked_state(session, model_id)
        state.failures += 1
        state.failed_at = state.failed_at if state.failures > 1 and state.failed_at else utcnow()
        state.error = error[:500]
