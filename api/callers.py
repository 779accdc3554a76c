"""Whether the caller of a request still waits for its answer: its deadline (``X-Request-Timeout``) has not
passed and its connection is open (the server's socket, ``gunicorn.socket``, not closed or reset by the peer;
a proxy in front closes its own when its client goes). A use case that commits what a long request made (an
upload, parsed for seconds) asks just before it commits, so that nothing is committed for a caller who has gone
and would never learn of it."""
from __future__ import annotations

import select
import socket
import time
from typing import Callable

from api import deadlines


def waiting(environ: dict) -> Callable[[], bool]:
    """A check of whether the caller of the request ``environ`` describes still waits (its deadline counted from
    when the request arrived; a 400 at once when its ``X-Request-Timeout`` is not a number of seconds)."""
    deadline = deadlines.of_environ(environ)
    connection = environ.get("gunicorn.socket")

    def still_waiting() -> bool:
        if deadline is not None and time.monotonic() >= deadline.at:
            return False
        return connection is None or connected(connection)
    return still_waiting


def connected(connection: socket.socket) -> bool:
    """False once the peer has closed or reset ``connection``; True while it is open, whatever it has sent (a
    request behind this one is unread bytes, not a close). Never waits."""
    try:
        poller = select.poll()
        poller.register(connection, select.POLLIN)
        events = poller.poll(0)
    except (OSError, ValueError):  # closed here already
        return False
    if not events:
        return True
    if events[0][1] & (select.POLLERR | select.POLLNVAL):
        return False
    try:
        return bool(connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return True
    except OSError:
        return False
