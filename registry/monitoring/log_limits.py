"""What keeps the prediction log within its room, as one process's writer sees it: the byte bound
(``PREDICTION_LOG_MAX_MB``, fairly per model: :mod:`registry.monitoring.log_bounds`), checked whenever the
writer wrote a fiftieth of it or ``check_seconds`` passed since it last did; the database volume's floor
(``PREDICTION_LOG_MIN_FREE_MB``: under it nothing is logged, so that the registry's own writes never meet a
full disk); the retention (``PREDICTION_LOG_DAYS``); and, with an export, the models held while their rows
wait for the lake (:mod:`registry.monitoring.log_holds`)."""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

from registry.monitoring import log_bounds
from registry.monitoring.log_bounds import MB, Usage
from registry.monitoring.log_holds import Holds
from registry.monitoring.log_settings import LogSettings
from registry.monitoring.tables import LoggedPrediction
from registry.tables import utcnow
from registry.telemetry import PREDICTION_LOG_PAUSED, PREDICTION_LOG_PRUNED

CHECK_SHARE = 50  # the writer checks the bound whenever it wrote this fraction of it (1/50) since it last did
PART_BYTES = 1 * MB  # the most one insert writes: free space is looked at again before each
WRITE_COST = 2  # what a write may take of the volume for its bytes: SQLite's WAL holds the pages, then the table
HOLD_CHECK_SECONDS = 0.5  # while models are held, how often the bound is checked: they log again soon after the lake took their rows


class Limits:
    """The bound's and the volume's state as this process's writer last checked them."""

    def __init__(self, settings: LogSettings, session_scope: Callable[[], AbstractContextManager]):
        self.settings = settings
        self._session_scope = session_scope
        self.holds = Holds(settings.max_mb)
        self.paused = False  # the database's volume is short of space: nothing is logged
        self.usage: Usage | None = None  # what the log held at this process's last check of the bound, before pruning
        self._unchecked_bytes = 0  # written since the bound was last checked
        self._left_bytes = 0  # what the log held after this writer's last check
        self._checked_at = float("-inf")

    def stop(self, model: str) -> bool:
        """Whether nothing of ``model`` is logged now (the volume is short, or the model is held)."""
        return self.paused or model in self.holds

    def part_bytes(self) -> float:
        """The most one insert writes: a fiftieth of the bound, PART_BYTES at most."""
        return min(self.settings.max_mb * MB / CHECK_SHARE, PART_BYTES)

    def free_space_warning(self, writing: int = 0) -> str | None:
        """Why nothing is logged now, checked now: a write of the log (``writing`` bytes, PART_BYTES at
        least) could take the database's volume under PREDICTION_LOG_MIN_FREE_MB free. None while it may log."""
        free = log_bounds.free_bytes(self.settings.database_url)
        floor = self.settings.min_free_mb * MB
        self.paused = free is not None and free - WRITE_COST * max(writing, PART_BYTES) < floor
        PREDICTION_LOG_PAUSED.set(int(self.paused))
        if not self.paused:
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

    def enforce(self) -> None:
        """Keep the log within PREDICTION_LOG_MAX_MB now (fair shares, oldest first), and hold the models
        whose rows wait for the lake past their overdraft."""
        self._checked_at, self._unchecked_bytes = time.monotonic(), 0
        with self._session_scope():
            check = log_bounds.enforce(self.settings.max_mb, exported_only=self.settings.export)
        self.usage, self._left_bytes = check.found, check.left.bytes
        self.holds.update(check.overdrawn)

    def wrote(self, size: int) -> None:
        """Count ``size`` bytes written, and check the bound when that makes a check due: a fiftieth of it
        written since the last check, what this writer wrote since would take the log past it, or
        ``check_seconds`` passed."""
        self._unchecked_bytes += size
        bound = self.settings.max_mb * MB
        if (self._unchecked_bytes * CHECK_SHARE >= bound or self._left_bytes + self._unchecked_bytes > bound
                or time.monotonic() - self._checked_at >= self.settings.check_seconds):
            self.enforce()

    def recheck_holds(self) -> None:
        """While models are held (nothing of theirs is written, so no write makes a check due): check every
        HOLD_CHECK_SECONDS whether the lake took their rows."""
        if self.holds and time.monotonic() - self._checked_at >= min(HOLD_CHECK_SECONDS, self.settings.check_seconds):
            self.enforce()

    def prune(self) -> int:
        """Delete what is older than the retention (and went to the lake, when it is exported), a bounded
        batch at a time; how many rows went."""
        cutoff = utcnow() - timedelta(seconds=self.settings.retention_seconds)
        old = LoggedPrediction.at < cutoff
        with self._session_scope():
            removed = log_bounds.delete_batches(log_bounds.exported(old) if self.settings.export else old)
            if removed:
                PREDICTION_LOG_PRUNED.labels("age").inc(removed)
                log_bounds.give_back()
        return removed
