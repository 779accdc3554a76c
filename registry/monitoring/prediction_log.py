"""The prediction log: a sample of the requests each model answered, written off the request path.

The prediction path only decides whether to keep a request (each model's share, errors always:
:mod:`registry.monitoring.log_sampling`) and puts it on a bounded queue, which never blocks
(:mod:`registry.monitoring.log_queue`). One thread per process takes what is queued every
``WRITE_SECONDS``, or at once when the queue is half full (a put wakes nobody otherwise: waking the
writer for every entry cost more than the writing), and writes it (:mod:`registry.monitoring.log_writer`),
deleting what is older than the retention as it writes. It keeps the log within its bytes and the
database's volume above its floor (:mod:`registry.monitoring.log_limits`). With an export, only rows the
lake took are pruned: a model whose rows wait for the lake (an export lagging, stalled or failing) is held
past its overdraft, whatever the export does (:mod:`registry.monitoring.log_holds`). On SQLite and PostgreSQL alike, from every worker and replica.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np

from registry import tracing
from registry.monitoring import log_bounds
from registry.monitoring.log_limits import Limits
from registry.monitoring.log_queue import Entry, LogQueue
from registry.monitoring.log_sampling import Shares
from registry.monitoring.log_settings import LogSettings
from registry.monitoring.log_writer import LogWriter
from registry.process.loop import Loop
from registry.serving.cache import ServableModel
from registry.serving.data_plane import Answer, Call, Failure
from registry.serving.routing import SHADOW
from registry.serving.shadow import ShadowJob
from registry.tables import utcnow
from registry.telemetry import PREDICTION_LOG_DROPPED

log = logging.getLogger(__name__)

BATCH = 100  # entries per insert: the writer holds the GIL while it binds them, so not too many at once
WRITE_SECONDS = 0.5  # how often the writer takes what is queued (flush and stop wake it at once)


class PredictionLog:
    """Samples requests, queues them, and writes them from a thread of this process."""

    def __init__(self, settings: LogSettings, session_scope: Callable[[], AbstractContextManager],
                 chance: Callable[[], float] = random.random, draw_key: bytes = b"",
                 explain_reference: Callable[[ServableModel], np.ndarray | None] = lambda servable: None):
        self.settings = settings
        self._session_scope = session_scope
        self.shares = Shares(settings.default_sample, settings.refresh_seconds, chance, draw_key)
        self.limits = Limits(settings, session_scope)
        self.writer = LogWriter(self.shares, self.limits, session_scope, self.refresh, settings.explain_bounds,
                                explain_reference)
        self._queue = LogQueue(settings.capacity)
        self._loop = Loop("prediction-log", WRITE_SECONDS, self._turn)
        self._pruned_at = float("-inf")

    def keeps(self, model: str, status: int, request_id: str | None = None) -> bool:
        """Whether to log this answer of ``model``: drawn by its share (an error always is). Asked before
        the entry is made, so the answers not drawn cost the request nothing more. With ``request_id``
        the draw is the id's own, so every answer under one id is kept or none is: a stranger who sends
        a known id again is never the only answer logged under it (nor the one its label reaches)."""
        if self.shares.ask_if_stale():
            self._loop.wake()  # the writer reads the shares again; this request uses the ones it has
        if self.limits.stop(model):  # the writer looks again each turn: logging resumes with space (or the lake)
            if model in self.limits.holds and (status >= 400 or self.shares.draws(model, request_id)):
                self.limits.holds.withhold(model)
            return False
        return status >= 400 or self.shares.draws(model, request_id)

    def offer(self, entry: Entry) -> None:
        """Queue ``entry`` (one ``keeps`` said yes to); never blocks, never raises."""
        if self._queue.put(entry):
            self._loop.wake()  # half full: the writer goes now rather than at its next turn

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
        self._loop.wake()
        return self._queue.drained(timeout)

    def start(self) -> None:
        """Start this process's writer (the app's lifecycle does, in each worker); until then entries wait queued."""
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        self.flush(timeout)
        self._loop.stop(timeout)

    def follow(self, observe_changes: Callable[[Callable[[], None]], None]) -> None:
        """Have the shares read by whoever ``observe_changes`` registers with (the alias watcher's
        :meth:`~registry.serving.server.ModelServer.observe_changes`): at the worker's start and within
        ``ALIAS_REFRESH_SECONDS`` of any change, rather than when requests come."""
        observe_changes(self.refresh)
        self.shares.followed = True

    def refresh(self) -> None:
        """Read every model's share and id again."""
        with self._session_scope():
            self.shares.read()

    def warnings(self) -> list[str]:
        """What narrows or stops the log now (for /readyz): the database's volume short of space (checked
        now), the log near its bound, models held for the lake (as this process last checked)."""
        found = (self.limits.free_space_warning(), self.limits.bound_warning(), self.limits.holds.warning())
        return [warning for warning in found if warning]

    def enforce(self) -> None:
        """Keep the log within PREDICTION_LOG_MAX_MB now (fair shares, oldest first), and hold the models
        whose rows wait for the lake past their overdraft."""
        self.limits.enforce()

    def prune(self) -> int:
        """Delete what is older than the retention (and went to the lake, when it is exported); how many rows went."""
        return self.limits.prune()

    def _turn(self) -> bool:
        """Write a batch of what is queued; True when a whole batch went (more is waiting: no pause)."""
        batch = self._queue.take(BATCH)
        try:
            if self.shares.asked():
                self.refresh()
            self.limits.recheck_holds()  # nothing of a held model is written: see whether the lake took its rows
            if self.limits.free_space_warning() is not None:
                PREDICTION_LOG_DROPPED.inc(len(batch))  # queued before the volume ran short
            elif batch:
                self.writer.write(batch)
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
            self._queue.done(batch)
        return len(batch) == BATCH
