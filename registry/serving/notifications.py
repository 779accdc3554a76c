"""Changes announced by PostgreSQL the moment they commit (LISTEN/NOTIFY), so every worker of every
replica re-reads its aliases at once instead of at its next poll.

The announcing side is :func:`registry.changes.record`: a transaction that moves an alias, changes a
rollout or archives a version also sends ``NOTIFY`` on :data:`CHANNEL`, delivered when it commits.
The poll stays as the safety net: a notification missed while the connection was down is made up
for by re-reading everything on reconnect, and by the poll in any case.

The listener needs a direct connection to PostgreSQL: behind PgBouncer in transaction pooling mode
``LISTEN`` does not hold, and the replicas fall back to polling.
"""
import logging
from collections.abc import Callable

from registry.changes import CHANNEL
from registry.process.loop import Loop

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
WAIT_SECONDS = 1.0  # how often the listening connection looks up from waiting, to notice a stop


class ChangeListener:
    """A loop (``change-listener``) that holds a listening connection and calls ``wake`` for each notification on
    :data:`CHANNEL`, and once after each (re)connection, until stopped; a lost connection is made again
    :data:`RECONNECT_SECONDS` later."""

    def __init__(self, conninfo: str):
        self._conninfo = conninfo
        self._wake: Callable[[], None] = lambda: None
        self._down = False
        self._loop = Loop("change-listener", RECONNECT_SECONDS, self._listen, first_tick_at_start=True)

    def start(self, wake: Callable[[], None]) -> None:
        """Start listening in this process; ``wake`` must be quick (it only signals another thread)."""
        self._wake = wake
        self._loop.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop listening (within :data:`WAIT_SECONDS`); wait up to ``timeout`` seconds for it. Whether it has."""
        return self._loop.stop(timeout)

    def _listen(self) -> None:
        """Listen on one connection until stopped, or until the connection fails."""
        import psycopg  # here: a server on SQLite never needs it, and it costs a quarter second of every start

        try:
            with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as connection:
                connection.execute(f"LISTEN {CHANNEL}")
                if self._down:
                    log.warning("listening for changes again")
                self._down = False
                self._wake()  # whatever was announced while not listening is read now
                while not self._loop.stopping:
                    for _ in connection.notifies(timeout=WAIT_SECONDS):
                        self._wake()
        except psycopg.Error as exc:
            if not self._down:
                log.error("cannot listen for changes (%s); the alias poll serves them meanwhile", exc)
            self._down = True
