"""One way to run background work in a process: a :class:`Loop` calls its ``tick`` from a daemon
thread every ``period`` seconds (at once when woken, or when the tick says more is waiting) until
it is stopped. Every background job of the registry is one: the alias watcher and its PostgreSQL change
listener (whose tick holds a listening connection until the loop stops or the connection fails), the shadow
runner, the readiness probes' checks, the prediction log's writer, the webhook deliverer, the leased fleet
work (monitoring sweep, rollout controller, artifact scrub, log export) and the metric files' flusher. The
app's lifecycle (``api/lifecycle.py``) starts and stops them; no import or constructor does.

A loop is started at most once per process: a process forked from one whose loop ran (gunicorn's
workers) starts a thread of its own on its first :meth:`Loop.start`.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Loop:
    """``tick()`` every ``period`` seconds on a thread named ``name``; a tick that returns True is
    followed by the next at once (more work is waiting). ``first_tick_at_start``: tick as soon as the
    thread starts, instead of one period later. A tick that raises is logged, and the loop goes on."""

    def __init__(self, name: str, period: float, tick: Callable[[], bool | None], *,
                 first_tick_at_start: bool = False):
        self.name = name
        self.period = period
        self._tick = tick
        self._first_tick_at_start = first_tick_at_start
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """Whether this process's thread of the loop was started and not stopped."""
        return self._pid == os.getpid() and self._thread is not None and not self._stop.is_set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (a tick may check it to cut its work short)."""
        return self._stop.is_set()

    def start(self) -> bool:
        """Start this process's thread; False when it runs already (or ``period`` is 0: never)."""
        if self.period <= 0 or (self._pid == os.getpid() and self._thread is not None):
            return False
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None:
                return False
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._wake = threading.Event()
            self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
            self._thread.start()
        return True

    def run(self) -> None:
        """Tick in the calling thread until stopped (what the thread runs; a command may run it in front)."""
        more = self._first_tick_at_start
        while not self._stop.is_set():
            if not more:
                self._wake.wait(self.period)
                self._wake.clear()
                if self._stop.is_set():
                    return
            try:
                more = bool(self._tick())
            except Exception:
                log.exception("the %s loop's turn failed; it runs again in %g s", self.name, self.period)
                more = False

    def wake(self) -> None:
        """Tick now rather than at the end of the period."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop ticking; wait up to ``timeout`` seconds for a tick in progress (None: do not wait).
        Whether the thread of this process has ended (True where it never ran here)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread if self._pid == os.getpid() else None
        if thread is None or thread is threading.current_thread():
            return True
        if timeout is not None:
            thread.join(timeout)
        return not thread.is_alive()
