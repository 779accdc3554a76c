"""What bounds the prediction log by bytes, and keeps it from swelling the database's files.

Each row carries its size (``bytes``: its JSON and text, plus a fixed :data:`ROW_OVERHEAD`, and its
label's JSON once feedback brings one: :func:`label_bytes`), so a
model's use is one ``SUM`` over its rows, and the whole log's one ``GROUP BY`` over a table that is
itself bounded. Any writer of the fleet may make the check (:func:`enforce`): every row it deletes
is older than the newest row it keeps, so two writers checking at once delete the same rows.

Fair shares (:func:`allotments`): ``PREDICTION_LOG_MAX_MB`` is divided among the models that have
rows, by water-filling: a model using less than an equal share keeps all it has, and what it leaves
goes to the others in equal parts; a model's own ``max_mb`` caps it lower. A model over its allotment
loses its oldest rows down to :data:`LOW_WATER` of it, so that it does not go over again at the next row.

Pruning gives the space back (at most once a second in a process, :data:`GIVE_BACK_SECONDS`): on SQLite the pages freed are returned to the file system
(``auto_vacuum=INCREMENTAL`` and ``PRAGMA incremental_vacuum``) and the WAL is emptied
(``wal_checkpoint(TRUNCATE)``); on PostgreSQL a plain ``VACUUM``
(not FULL: it takes no lock that stops readers or writers) makes the dead rows' space reusable at
once, so the table and its indexes stay at the size the bound implies (``bench/log_bound.py``).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from registry import finite_json
from registry.db import db, end_read, write_transaction
from registry.monitoring.tables import LogExport, LoggedPrediction
from registry.tables import RegisteredModel
from registry.telemetry import PREDICTION_LOG_PRUNED

log = logging.getLogger(__name__)

MB = 1024 * 1024
ROW_OVERHEAD = 64  # the fixed columns of a row (ids, version, latency, status, times), counted once
LOW_WATER = 0.9  # a model over its allotment is pruned down to this share of it
# While its rows wait for the lake (an export lagging behind a flood, stalled or failing), a model may go this
# far over its allotment; past it, nothing more of it is logged until the lake takes them and the bound prunes.
OVERDRAFT = 1.25
NEAR = 0.9  # /readyz warns when the log holds this share of PREDICTION_LOG_MAX_MB or more
PRUNE_BATCH = 5_000  # rows deleted per statement, so that pruning never holds a long lock
VACUUM_PAGES = 10_000  # pages (4 KB) SQLite gives back per turn at most: a short write lock
# A flood at a small bound prunes every twenty rows or so; giving space back each time (a WAL truncate on
# SQLite, a VACUUM on PostgreSQL) stalls the writers behind it: a process does it at most this often.
GIVE_BACK_SECONDS = 1.0


@dataclass(frozen=True)
class Usage:
    """What the log holds: per model name, (rows, bytes)."""

    models: dict[str, tuple[int, int]]

    @property
    def bytes(self) -> int:
        """Bytes of every model's rows."""
        return sum(size for _, size in self.models.values())

    @property
    def rows(self) -> int:
        """Rows of every model."""
        return sum(rows for rows, _ in self.models.values())


def row_bytes(*, inputs: str | None, outputs: str | None, request_id: str, alias: str | None,
              route: str | None, trace_id: str | None = None, explanations: str | None = None) -> int:
    """What a row counts for: its JSON and text as written (its explanations' too), and the fixed columns
    (migration 0014 measures alike)."""
    return ROW_OVERHEAD + sum(len(part) for part in (inputs, outputs, request_id, alias, route, trace_id, explanations)
                              if part)


def label_bytes(label: object) -> int:
    """What a label adds to its row's size: its JSON as the database keeps it (nothing for no label)."""
    return 0 if label is None else len(finite_json.dumps(label))


def allotments(used: dict[str, int], bound: int, caps: dict[str, int]) -> dict[str, int]:
    """Each model's share of ``bound`` bytes, by water-filling over what each has ``used`` (a model's own
    cap in ``caps`` lowering what it asks for): a model gets all it uses up to an equal share of what the
    models using less leave, so no model is cut below an equal share by another's traffic."""
    demands = {name: min(size, caps.get(name, size)) for name, size in used.items()}
    left, given = bound, {}
    waiting = sorted(demands, key=demands.get)
    for position, name in enumerate(waiting):
        fair = left // (len(waiting) - position)
        given[name] = min(demands[name], fair)
        left -= given[name]
    return given


def usage() -> Usage:
    """Rows and bytes per model, read now (one aggregate over the bounded table)."""
    found = db.session.execute(
        select(RegisteredModel.name, func.count(LoggedPrediction.id), func.coalesce(func.sum(LoggedPrediction.bytes), 0))
        .join(RegisteredModel, RegisteredModel.id == LoggedPrediction.model_id)
        .group_by(RegisteredModel.name)
    ).all()
    end_read()
    return Usage({name: (rows, int(size)) for name, rows, size in found})


def shares(bound_mb: float) -> tuple[Usage, dict[str, int]]:
    """What the log holds now, and each model's allotment of ``bound_mb`` in bytes."""
    held = usage()
    used = {name: size for name, (_, size) in held.models.items()}
    return held, allotments(used, int(bound_mb * MB), _caps())


@dataclass(frozen=True)
class Check:
    """A check of the bound: the usage found (before pruning), the usage left, and the models left past
    :data:`OVERDRAFT` of their allotment (their rows wait for the lake, whether its export lags, stalls or fails)."""

    found: Usage
    left: Usage
    overdrawn: frozenset[str]


def enforce(bound_mb: float, *, exported_only: bool = False) -> Check:
    """Prune every model over its allotment of ``bound_mb``, oldest first. ``exported_only``: never past what
    went to the lake (LogExport), so a model whose rows the lake has not taken may stay over."""
    before, given = shares(bound_mb)
    removed = 0
    for name, (_, size) in before.models.items():
        if size > given[name]:
            removed += _prune_model(name, int(given[name] * LOW_WATER), exported_only=exported_only)
    left = before
    if removed:
        PREDICTION_LOG_PRUNED.labels("bytes").inc(removed)
        give_back()
        left = usage()
    over = {name for name, (_, size) in left.models.items() if name in given and size > given[name] * OVERDRAFT}
    return Check(before, left, frozenset(over) if exported_only else frozenset())


def _caps() -> dict[str, int]:
    """Each model's own cap in bytes, where it set one."""
    found = db.session.execute(
        select(RegisteredModel.name, RegisteredModel.prediction_log_max_mb)
        .where(RegisteredModel.prediction_log_max_mb.is_not(None))
    ).all()
    end_read()
    return {name: int(max_mb * MB) for name, max_mb in found}


def _prune_model(name: str, keep: int, *, exported_only: bool) -> int:
    """Delete ``name``'s oldest rows until its newest ones hold ``keep`` bytes at most (and, ``exported_only``,
    none past its high-water mark in the lake); how many went."""
    model_id = db.session.execute(select(RegisteredModel.id).where(RegisteredModel.name == name)).scalar_one()
    cutoff = cutoff_id(model_id, keep)
    if cutoff is not None and exported_only:
        cutoff = min(cutoff, exported_id(model_id))
    end_read()
    if not cutoff:
        return 0
    return delete_batches((LoggedPrediction.model_id == model_id) & (LoggedPrediction.id <= cutoff))


def cutoff_id(model_id: int, keep: int) -> int | None:
    """The newest row of the model that does not fit when its newest rows may hold ``keep`` bytes (it and
    every older row are past it); None when all fit."""
    running = select(
        LoggedPrediction.id,
        func.sum(LoggedPrediction.bytes).over(order_by=LoggedPrediction.id.desc()).label("kept"),
    ).where(LoggedPrediction.model_id == model_id).subquery()
    return db.session.execute(
        select(running.c.id).where(running.c.kept > keep).order_by(running.c.id.desc()).limit(1)
    ).scalar()


def exported_id(model_id: int) -> int:
    """The model's high-water mark in the lake: its rows up to this id were exported (0: none)."""
    return db.session.execute(select(LogExport.exported_id).where(LogExport.model_id == model_id)).scalar() or 0


def exported(condition):
    """``condition`` narrowed to the rows that went to the lake (each model's up to its high-water mark)."""
    mark = select(LogExport.exported_id).where(LogExport.model_id == LoggedPrediction.model_id).scalar_subquery()
    return condition & (LoggedPrediction.id <= func.coalesce(mark, 0))


def delete_batches(condition) -> int:
    """Delete the log's rows matching ``condition``, PRUNE_BATCH at a time; how many went."""
    removed = 0
    while True:
        with write_transaction() as session:
            ids = select(LoggedPrediction.id).where(condition).limit(PRUNE_BATCH)
            gone = session.execute(
                LoggedPrediction.__table__.delete().where(LoggedPrediction.id.in_(ids.scalar_subquery()))
            ).rowcount
        removed += gone
        if gone < PRUNE_BATCH:
            return removed


class _GivingBack:
    """When this process last gave pruned space back, and whether it owes a turn (pruned since)."""

    at = float("-inf")
    owed = False


def give_back() -> None:
    """After pruning: SQLite returns freed pages to the file system, PostgreSQL marks dead rows' space reusable;
    at most once every GIVE_BACK_SECONDS in a process (a turn put off is owed: :func:`give_back_owed`)."""
    if time.monotonic() - _GivingBack.at < GIVE_BACK_SECONDS:
        _GivingBack.owed = True
        return
    _GivingBack.at, _GivingBack.owed = time.monotonic(), False
    engine = db.engine
    if engine.dialect.name == "sqlite":
        connection = engine.raw_connection()
        try:
            # executescript steps the pragma to its end (one execute frees a single page), outside any transaction.
            # Then the WAL is written back and emptied: under a steady flood the automatic (passive)
            # checkpoints never catch up, and the WAL would grow without bound beside a flat file.
            connection.driver_connection.executescript(
                f"PRAGMA incremental_vacuum({VACUUM_PAGES}); PRAGMA wal_checkpoint(TRUNCATE);"
            )
        finally:
            connection.close()
    elif engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # SKIP_LOCKED: another process vacuuming it now does the same work; nobody waits for it.
            connection.execute(text(f"VACUUM (SKIP_LOCKED) {LoggedPrediction.__tablename__}"))


def owes_give_back() -> bool:
    """Whether a pruning of this process put giving space back off (:func:`give_back` pays it once
    GIVE_BACK_SECONDS passed; the writer asks at every turn, also when nothing comes to write)."""
    return _GivingBack.owed


def free_bytes(database_url: str) -> int | None:
    """Free space on the volume of a SQLite database's file; None where it cannot be seen (PostgreSQL's server)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return shutil.disk_usage(os.path.dirname(os.path.abspath(url.database))).free
