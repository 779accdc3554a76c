"""Loading versions into this process: one load per version through the model cache, a failed load
tried again only after its backoff (or once its file changed), and hooks for what watches loads."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from registry.errors import NotFetchedYet, StoreUnavailable
from registry.facts import VersionInfo
from registry.serving.cache import ModelCache, ServableModel
from registry.serving.load_failures import LoadFailures
from registry.serving.loader import Loader
from registry.telemetry import CACHE_LOAD_FAILURES, CACHE_LOADS, MODEL_LOAD_SECONDS

log = logging.getLogger(__name__)


class VersionLoads:
    """The loaded versions of this process (``cache``) and the loads that failed (``failures``).

    ``pinned()`` names what the cache must never evict; ``on_change()`` is called whenever a
    version came into the cache or left it.
    """

    def __init__(self, loader: Loader, *, memory_budget_bytes: int, retry_after_seconds: float,
                 pinned: Callable[[], set], on_change: Callable[[], None]):
        self.loader = loader
        self.cache = ModelCache(memory_budget_bytes, pinned=pinned, on_change=on_change)
        self.failures = LoadFailures(first_delay=retry_after_seconds)

    def load(self, info: VersionInfo) -> ServableModel:
        """The loaded model of a version (one load per version per process).

        A version that failed to load answers with the same error, without reading its file again,
        until its backoff has passed or its file has changed.
        """
        self.failures.raise_if_waiting(failure_key(info), self.loader.stamp(info.sha256))
        return self.cache.get((info.model, info.number), lambda: self._load(info))

    def retry_due(self, infos: Iterable[VersionInfo]) -> bool:
        """True when one of ``infos`` (versions that failed to load) may be tried again: its delay
        passed, or its file changed."""
        return any(not self.failures.waiting(failure_key(info), self.loader.stamp(info.sha256)) for info in infos)

    def waits_for_store(self, info: VersionInfo) -> bool:
        """Not loaded for want of the store: it failed to answer, or was not asked yet (no failure recorded)."""
        failure = self.failures.get(failure_key(info))
        return failure is None or isinstance(failure.error, StoreUnavailable)

    def failure_detail(self, info: VersionInfo) -> str:
        """Why the version is not loaded, in words."""
        failure = self.failures.get(failure_key(info))
        return failure.detail if failure is not None else "not loaded yet"

    def drop_written(self, serving: Iterable[ServableModel]) -> set[tuple[str, int]]:
        """The loaded versions (in the cache, or ``serving``) whose mapped files were written since they
        were checked (on this machine's disk, under this worker): out of the cache now, to be loaded
        again (what serves them meanwhile stays: the walk never reads outside its records)."""
        loaded = {(s.model, s.version): s for s in self.cache.models()}
        loaded.update({(s.model, s.version): s for s in serving})
        written = {key for key, servable in loaded.items() if self.loader.changed(servable)}
        for key in written:
            log.warning("the served form of %s v%s was written on disk since it was checked; loading it again", *key)
            self.cache.discard(key)
        return written

    def _load(self, info: VersionInfo) -> ServableModel:
        stamp = self.loader.stamp(info.sha256)  # before reading: a change during the read means "try again"
        started = time.perf_counter()
        try:
            servable = self.loader(info)
        except NotFetchedYet:
            raise  # not a failure: the artifact is fetched where that is allowed (a worker, after the fork)
        except Exception as exc:
            CACHE_LOAD_FAILURES.labels(info.model).inc()
            failure = self.failures.record(failure_key(info), exc, stamp)
            # One line per attempt, no traceback: the detail says what is wrong and what to do.
            log.error(
                "could not load %s v%s: %s (attempt %d; next attempt in %.2f s at the earliest)",
                info.model, info.number, _log_detail(exc), failure.attempts, failure.delay,
            )
            raise
        self.failures.clear(failure_key(info))
        CACHE_LOADS.labels(info.model).inc()
        MODEL_LOAD_SECONDS.observe(time.perf_counter() - started)
        return servable


def failure_key(info: VersionInfo) -> tuple:
    """What a load failure is kept under: a new upload of other bytes is a new key."""
    return info.model, info.number, info.sha256


def _log_detail(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    return detail if isinstance(detail, str) else f"{type(exc).__name__}: {exc}"
