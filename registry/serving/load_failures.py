"""Versions that failed to load in this process, and when each may be tried again.

A damaged or missing file does not heal by itself: reading and hashing it again at every poll only
burns CPU and floods the log. Each failure doubles the wait before the next attempt, from the poll
interval up to a cap; a file that changed on disk since (repaired, restored) is tried at once. A
store that did not answer may be back any moment, so its cap is shorter.
"""
import copy
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from registry.errors import RegistryError, StoreUnavailable

MAX_RETRY_SECONDS = 300.0
# A store that does not answer comes back by itself: a load waiting on it is tried at least this often.
MAX_RETRY_SECONDS_WHILE_UNAVAILABLE = 10.0


@dataclass(frozen=True)
class LoadFailure:
    """The last failed load of one version: its error, how many attempts so far, when to try again."""

    error: Exception
    attempts: int
    delay: float  # seconds from this failure to the next attempt
    retry_at: float  # on the clock of LoadFailures
    stamp: tuple | None  # the file as it was before the failed read (ArtifactStore.stamp)

    @property
    def detail(self) -> str:
        """What went wrong, safe to show to anyone (never a path)."""
        if isinstance(self.error, RegistryError):
            return self.error.detail
        return f"it could not be loaded ({type(self.error).__name__}); see the server log"


class LoadFailures:
    """Failed loads by key, with an exponential backoff per key. Safe to share between threads."""

    def __init__(self, first_delay: float, max_delay: float = MAX_RETRY_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.first_delay = first_delay
        self.max_delay = max(first_delay, max_delay)
        self._clock = clock
        self._failures: dict[Hashable, LoadFailure] = {}
        self._lock = threading.Lock()

    def waiting(self, key: Hashable, stamp: tuple | None) -> bool:
        """True while ``key`` waits for its next attempt and its file is unchanged."""
        failure = self._failures.get(key)
        return failure is not None and failure.stamp == stamp and self._clock() < failure.retry_at

    def raise_if_waiting(self, key: Hashable, stamp: tuple | None) -> None:
        """Raise the remembered error while ``key`` waits for its next attempt and its file is unchanged."""
        failure = self._failures.get(key)
        if failure is not None and self.waiting(key, stamp):
            raise _fresh(failure.error)

    def record(self, key: Hashable, error: Exception, stamp: tuple | None) -> LoadFailure:
        """Remember a failed attempt; the wait before the next one doubles each time, up to the cap."""
        with self._lock:
            previous = self._failures.get(key)
            attempts = previous.attempts + 1 if previous is not None else 1
            cap = MAX_RETRY_SECONDS_WHILE_UNAVAILABLE if isinstance(error, StoreUnavailable) else self.max_delay
            delay = min(cap, self.first_delay * 2 ** min(attempts - 1, 32))
            # A copy: the original's traceback holds the frames (and the file's bytes) that failed.
            failure = LoadFailure(_fresh(error), attempts, delay, self._clock() + delay, stamp)
            self._failures[key] = failure
        return failure

    def clear(self, key: Hashable) -> None:
        """Forget ``key`` after a successful load."""
        with self._lock:
            self._failures.pop(key, None)

    def get(self, key: Hashable) -> LoadFailure | None:
        """The last failure of ``key``, if it has not loaded since."""
        return self._failures.get(key)


def _fresh(error: Exception) -> Exception:
    """A copy without traceback, so threads answering from memory never share (and grow) one."""
    try:
        fresh = copy.copy(error)
    except Exception:  # an exception class that cannot be rebuilt from its args: raise the original
        return error
    # A copy may come with the traceback: a library that registers exceptions for pickling with their
    # tracebacks (tblib, which dask's distributed installs on import) makes copy.copy keep it.
    fresh.__traceback__ = fresh.__cause__ = fresh.__context__ = None
    return fresh
