"""The alias watcher: a daemon thread of each process that refreshes what it serves from the database
at every poll (or at once when a listener says another process committed a change), and tells the
observers of the registry's changes (a model's prediction-log share) whatever the traffic."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

from registry.process.loop import Loop

log = logging.getLogger(__name__)


class AliasWatcher:
    """Calls ``refresh`` every ``poll_seconds`` (and when woken), then ``on_poll``, until stopped."""

    def __init__(self, refresh: Callable[[], None], *, poll_seconds: float, on_poll: Callable[[], None]):
        self.poll_seconds = poll_seconds
        self._refresh = refresh
        self._on_poll = on_poll  # other periodic work of this process's serving (flushing figures)
        self._observers: list[Callable[[], None]] = []
        self._told_marker: tuple | None = None  # the change marker the observers were last told of
        self._observer_failed = False
        self._listener = None
        self._started = False
        self._lock = threading.Lock()
        self._loop = Loop("alias-watcher", poll_seconds, self._turn)
        self._database_down = False

    @property
    def started(self) -> bool:
        """True once this process serves (not in gunicorn's master, whose warm-up is no start)."""
        return self._started

    def observe(self, observer: Callable[[], None]) -> None:
        """Call ``observer`` when the watcher starts and whenever it finds the registry changed; one
        that raises is called again at the next poll."""
        self._observers.append(observer)

    def listen(self, listener) -> None:
        """Be woken by ``listener`` (a :class:`~registry.serving.notifications.ChangeListener`, started
        with the watcher) as soon as another process commits a change, instead of at the next poll."""
        self._listener = listener

    def start(self) -> None:
        """Refresh once now, then keep refreshing from a daemon thread (the first call only)."""
        if self._started:  # every request asks: no lock once it has started
            return
        with self._lock:
            if self._started:
                return
            self._started = True
        self.refresh_logged()
        self._loop.start()
        if self._listener is not None:
            self._listener.start(self.wake)

    def wake(self) -> None:
        """Refresh now rather than at the next poll."""
        self._loop.wake()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the loop and the listener (tests and shutdown); wait up to ``timeout`` seconds for each."""
        self._loop.stop(timeout)
        if self._listener is not None:
            self._listener.stop(timeout)

    def tell(self, marker: tuple) -> None:
        """Tell the observers, once per change of ``marker`` and only once started; one that fails is told
        again at the next poll."""
        if not self._started or marker == self._told_marker:
            return
        for observer in self._observers:
            try:
                observer()
            except Exception:
                if not self._observer_failed:  # once, not at every poll
                    log.exception("could not follow a change of the registry; trying again at every poll")
                self._observer_failed = True
                return
        self._observer_failed = False
        self._told_marker = marker

    def refresh_logged(self) -> None:
        """Refresh, logging a database outage once (not at every poll) and its end."""
        try:
            self._refresh()
        except OperationalError as exc:
            if not self._database_down:
                log.error("alias refresh failed: the database is unavailable (%s); serving the last known aliases",
                          exc.orig if exc.orig is not None else exc)
            self._database_down = True
            return
        except Exception:
            log.exception("alias refresh failed; serving the last known aliases")
            return
        if self._database_down:
            log.warning("the database answers again; alias refresh resumed")
            self._database_down = False

    def _turn(self) -> None:
        self.refresh_logged()
        self._on_poll()
