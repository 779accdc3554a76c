"""The prediction log's writer: a batch of entries made rows and inserted, a part at a time, within the
bound and the volume's floor, with the explanations a model's ``explain`` share asks for computed on the
way (:mod:`registry.monitoring.logged_explanations`, within a share of one core)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np

from registry.db import db, write_transaction
from registry.monitoring import log_rows
from registry.monitoring.log_limits import Limits
from registry.monitoring.log_queue import Entry
from registry.monitoring.log_sampling import Shares
from registry.monitoring.logged_explanations import TimeBudget, explain_logged
from registry.serving.cache import ServableModel
from registry.serving.explain_bounds import ExplainBounds
from registry.telemetry import PREDICTION_LOG_DROPPED, PREDICTION_LOG_EXPLAINED, PREDICTION_LOG_WRITTEN

log = logging.getLogger(__name__)


class LogWriter:
    """Writes batches for one process's log: its shares say whose rows are explained and under which ids."""

    def __init__(self, shares: Shares, limits: Limits, session_scope: Callable[[], AbstractContextManager],
                 read_shares: Callable[[], None], explain_bounds: ExplainBounds,
                 explain_reference: Callable[[ServableModel], np.ndarray | None]):
        self._shares = shares
        self._limits = limits
        self._session_scope = session_scope
        self._read_shares = read_shares
        self._explain_bounds = explain_bounds
        self._explain_reference = explain_reference  # a linear version's reference mean, as its callers' answers use
        self.explaining = TimeBudget()  # the writer's time for explanations

    def write(self, batch: list[Entry]) -> None:
        """Insert ``batch``, a transaction per part of at most a fiftieth of the bound and PART_BYTES (the
        whole batch but for large rows), checking the bound after each part that makes one due. Before each
        part the volume's free space is looked at again, counting the part: where it would leave less than
        PREDICTION_LOG_MIN_FREE_MB, the rest is dropped (and the log pauses), so that the log passes the
        floor by no more than what the other writers write at that moment. The rows of a model held
        meanwhile (queued before its hold) are dropped, so the hold bounds what was queued too."""
        if {entry.model for entry in batch} - set(self._shares.model_ids):
            self._read_shares()
        explained = [self._explanations(entry) for entry in batch]
        model_ids = self._shares.model_ids
        with self._session_scope():
            statement, at = log_rows.insert_for(db.engine.dialect)
            rows = [log_rows.row(entry, model_ids[entry.model], at, explanations=explanations)
                    for entry, explanations in zip(batch, explained) if entry.model in model_ids]
            parts = log_rows.parts(rows, self._limits.part_bytes())
            for index, part in enumerate(parts):
                if self._limits.free_space_warning(writing=sum(row[-1] for row in part)) is not None:
                    PREDICTION_LOG_DROPPED.inc(sum(len(left) for left in parts[index:]))
                    return
                part = self._limits.holds.kept(part, model_ids)
                if not part:
                    continue
                with write_transaction() as session:
                    session.connection().exec_driver_sql(statement, part)
                PREDICTION_LOG_WRITTEN.inc(len(part))
                self._limits.wrote(sum(row[-1] for row in part))

    def _explanations(self, entry: Entry) -> dict | None:
        """The stored explanations of ``entry``'s rows when its model's ``explain`` share draws it (by its request
        id, as the sample does, so every answer under one id is explained or none is); None otherwise."""
        if (entry.status != 200 or entry.servable is None or entry.rows is None
                or not self._shares.explains(entry.model, entry.request_id)):
            return None
        if entry.asked is None and not self.explaining.allows():
            PREDICTION_LOG_EXPLAINED.labels("skipped").inc()
            return None
        started = time.perf_counter()
        try:
            found = explain_logged(entry.servable, entry.rows, bounds=self._explain_bounds, asked=entry.asked,
                                   reference=self._explain_reference)
        except Exception:  # a fault of the explainer must not cost the log its rows: they are kept without
            log.exception("version %s of %r could not explain a logged answer; it is logged without", entry.version,
                          entry.model)
            found = None
        finally:
            self.explaining.spend(time.perf_counter() - started)
        PREDICTION_LOG_EXPLAINED.labels("explained" if found is not None else "unexplainable").inc()
        return found
