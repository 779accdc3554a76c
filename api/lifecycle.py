"""One process's lifecycle, built with the app: what a worker starts before it answers (its alias
watcher, its webhook deliverer, its background loops, the flusher of its shared metrics) and what it
stops before it exits, each registered once by the part that owns it, at app creation.

The server calls :meth:`Lifecycle.start` when a worker is ready and :meth:`Lifecycle.stop` when it
goes (gunicorn's ``post_worker_init`` and ``worker_exit`` hooks, ``deploy/gunicorn_conf.py``, do only
that); a server without such hooks gets the starts from the first request, whichever path answers
it (Flask's hooks, or the prediction routes' door): once they ran, it is a flag check. Starts run in the
order they were registered, stops in the reverse order; a process stops only the parts it started
(none in a process that started none: gunicorn's master, a forked child).

Every thread that lives as long as the process is started by a part's start and ended by its stop (most
are a :class:`registry.process.loop.Loop`); none is started by an import or a constructor.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)

EXTENSION = "lifecycle"


class Lifecycle:
    """The starts and stops of the parts of one app, run once per process."""

    def __init__(self):
        self._parts: list[tuple[str, Callable[[], object] | None, Callable[[], object] | None]] = []
        self._started_in: int | None = None  # the process that ran the starts
        self._running: tuple[int | None, list[str]] = (None, [])  # the parts a process started, and which one
        self._lock = threading.Lock()

    def add(self, name: str, *, start: Callable[[], object] | None = None,
            stop: Callable[[], object] | None = None) -> None:
        """Register a part: ``start`` runs when a worker starts, ``stop`` before it exits."""
        self._parts.append((name, start, stop))

    def start(self) -> None:
        """Run every start, once per process (a forked worker runs its own). A start that fails stops the parts
        started before it, the last first, and raises: the next call starts every part again, each once."""
        if self._started_in == os.getpid():
            return
        with self._lock:
            if self._started_in == os.getpid():
                return
            started: list[str] = []
            self._running = (os.getpid(), started)
            try:
                for name, start, _ in self._parts:
                    if start is not None:
                        start()
                    started.append(name)
            except BaseException:
                self._running = (None, [])
                self._stop(started)
                raise
            self._started_in = os.getpid()

    def stop(self) -> None:
        """Run the stops of the parts this process started, the last registered first; one that fails is logged
        and the others still run. Once: a second stop, or one in a process that started nothing, does nothing."""
        with self._lock:
            pid, started = self._running
            if pid != os.getpid():
                return
            self._running, self._started_in = (None, []), None
        self._stop(started)

    def _stop(self, started: list[str]) -> None:
        for name, _, stop in reversed(self._parts):
            if stop is None or name not in started:
                continue
            try:
                stop()
            except Exception:
                log.exception("stopping the %s failed; stopping the rest", name)

def init_app(app: Flask) -> None:
    """Give ``app`` its lifecycle, started by its first request if the server did not start it."""
    app.extensions[EXTENSION] = Lifecycle()
    app.before_request(lambda: of(app).start())


def of(app: Flask) -> Lifecycle:
    """``app``'s lifecycle."""
    return app.extensions[EXTENSION]
