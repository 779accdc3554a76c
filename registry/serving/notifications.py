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
import threading
from collections.abc import Callable

from registry.changes import CHANNEL

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
WAIT_SECONDS = 1.0  # how often the listening thread looks up from waiting, to notice a stop


class ChangeListener:
    """A daemon thread that calls ``wake`` for each notification on :data:`CHANNEL`, and once after
    each (re)connection, until stopped."""

    def __init__(self, conninfo: str):
        self._conninfo = conninfo
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wake: Callable[[], None]) -> None:
        """Start listening in this process; ``wake`` must be quick (it only signals another thread)."""
        self._thread = threading.Thread(target=self._run, args=(wake,), name="change-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (within :data:`WAIT_SECONDS`)."""
        self._stop.set()

    def _run(self, wake: Callable[[], None]) -> None:
        import psycopg  # here: a server on SQLite never needs it, and it costs a quarter second of every start

        down = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    if down:
                        log.warning("listening for changes again")
                    down = False
                    wake()  # whatever was announced while not listening is read now
                    while not self._stop.is_set():
                        for _ in connection.notifies(timeout=WAIT_SECONDS):
                            wake()
            except psycopg.Error as exc:
                if not down:
                    log.error("cannot listen for changes (%s); the alias poll serves them meanwhile", exc)
                down = True
                self._stop.wait(RECONNECT_SECONDS)
