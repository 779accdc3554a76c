"""Pacing a long read so that it takes no more than its share of a disk or a network."""
import time
from collections.abc import Callable


class Throttle:
    """Called with the size of each chunk read, sleeps as long as keeps the average at most
    ``bytes_per_second`` since the first call (0 or less: never sleeps)."""

    def __init__(self, bytes_per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.bytes_per_second = bytes_per_second
        self._clock = clock
        self._sleep = sleep
        self._started: float | None = None
        self._bytes = 0

    def __call__(self, count: int) -> None:
        """Account for ``count`` bytes just read; wait until they fit the rate."""
        now = self._clock()
        if self._started is None:
            self._started = now
        self._bytes += count
        if self.bytes_per_second > 0:
            ahead = self._bytes / self.bytes_per_second - (now - self._started)
            if ahead > 0:
                self._sleep(ahead)
