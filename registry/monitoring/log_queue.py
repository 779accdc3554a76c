"""What the prediction path hands the prediction log's writer: entries on a bounded queue that never
blocks (a full queue drops the entry and counts it, ``registry_prediction_log_dropped_total``)."""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from registry.serving.cache import ServableModel
from registry.serving.explanations import Explanations
from registry.telemetry import PREDICTION_LOG_DROPPED, PREDICTION_LOG_QUEUED


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


class LogQueue:
    """At most ``capacity`` entries waiting for the writer, which takes them a batch at a time and says when
    a batch is done (so that a flush can wait for what was queued before it)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._queue: queue.Queue[Entry] = queue.Queue(capacity)
        self._idle = threading.Condition()

    def put(self, entry: Entry) -> bool:
        """Queue ``entry`` without waiting (a full queue drops it, counted); whether the queue is half full
        now, so that the writer should go at once."""
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            PREDICTION_LOG_DROPPED.inc()
            return False
        PREDICTION_LOG_QUEUED.inc()
        return self._queue.qsize() * 2 >= self.capacity

    def take(self, most: int) -> list[Entry]:
        """Up to ``most`` entries, oldest first, without waiting; hand them back to :meth:`done`."""
        batch: list[Entry] = []
        while len(batch) < most:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def done(self, batch: list[Entry]) -> None:
        """Mark a taken batch as handled (written or dropped)."""
        for _ in batch:
            self._queue.task_done()
        with self._idle:
            self._idle.notify_all()

    def drained(self, timeout: float) -> bool:
        """Wait until everything queued so far is done (or ``timeout`` passes); whether it was."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
        return True
