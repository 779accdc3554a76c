"""The prediction log's entries as the rows its writer inserts.

The writer holds the GIL while it turns entries into rows, and every request thread of the worker
waits for it when it comes back from a socket call meanwhile: rows are made with orjson and passed
to the driver as they are, without SQLAlchemy's per-value processing (which cost the predict route
a quarter of its throughput at a 100 % share). The SQL is the table's own insert, compiled once.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import orjson

from registry.monitoring import log_bounds
from registry.monitoring.log_queue import Entry
from registry.monitoring.tables import LoggedPrediction

_COLUMNS = ("model_id", "version", "request_id", "alias", "route", "inputs", "outputs", "latency_ms", "status", "at",
            "weighed", "trace_id", "explanations", "bytes")  # bytes last: the writer's parts read a row's size there
_JSON_COLUMNS = {"inputs", "outputs", "explanations"}
_inserts: dict[str, tuple[str, Callable]] = {}


def insert_for(dialect) -> tuple[str, Callable]:
    """The driver-level insert of one logged request on ``dialect``, and how its time is bound there."""
    found = _inserts.get(dialect.name)
    if found is None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        cast = "::json" if dialect.name == "postgresql" else ""
        values = ", ".join(mark + (cast if column in _JSON_COLUMNS else "") for column in _COLUMNS)
        statement = f"INSERT INTO {LoggedPrediction.__tablename__} ({', '.join(_COLUMNS)}) VALUES ({values})"
        found = _inserts[dialect.name] = statement, LoggedPrediction.__table__.c.at.type.bind_processor(dialect)
    return found


def row(entry: Entry, model_id: int, at: Callable | None, *, explanations: dict | None = None) -> tuple:
    """``entry`` as the insert's values, its size (log_bounds.row_bytes) last."""
    inputs = _json(_jsonable(entry.rows) if not isinstance(entry.rows, np.ndarray) else entry.rows)
    outputs = _json(entry.outputs)
    explained = _json(explanations)
    size = log_bounds.row_bytes(inputs=inputs, outputs=outputs, request_id=entry.request_id, alias=entry.alias,
                                route=entry.route, trace_id=entry.trace_id, explanations=explained)
    return (model_id, entry.version, entry.request_id, entry.alias, entry.route, inputs, outputs,
            entry.latency_ms, entry.status, at(entry.at) if at is not None else entry.at, entry.weighed,
            entry.trace_id, explained, size)


def parts(rows: list[tuple], most_bytes: float) -> list[list[tuple]]:
    """``rows`` in consecutive parts of at most ``most_bytes`` each (a row's size is its last value), a row at least."""
    found: list[list[tuple]] = []
    size = most_bytes
    for values in rows:
        if size + values[-1] > most_bytes:
            found.append([])
            size = 0
        found[-1].append(values)
        size += values[-1]
    return found


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
