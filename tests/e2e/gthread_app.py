"""The WSGI app tests/e2e/test_gthread_worker.py serves with the repository's gunicorn worker, one thread.

``POST /hold`` holds the thread until its one byte of body arrives. Every request is answered with what the
worker told it: ``{"arrived": <the environ's ARRIVED>, "seen": <time.monotonic() as the app saw it>}``. Its
``queue_order`` is always active, writes the first line of every request it is shown to the file ``ASKED_FILE``
names, and puts later every request whose path starts with ``/later``.
"""
import json
import os
import time

from api.deadlines import ARRIVED


class QueueOrder:
    """Always asked; says in ``ASKED_FILE`` what it was shown."""

    def __init__(self, asked: str):
        self._asked = asked

    def active(self) -> bool:
        """Always: every request's first bytes are shown to :meth:`later`."""
        return True

    def later(self, head: bytes) -> bool:
        """Whether the request whose first bytes are ``head`` is a ``/later`` one; noted in the file first."""
        line = head.split(b"\r\n", 1)[0]
        with open(self._asked, "ab") as asked:
            asked.write(line + b"\n")
        return line.split(b" ")[1:2] == [b"/later"]


def app(environ, start_response):
    """Hold the thread (``POST /hold``) or say when the request arrived and was seen."""
    seen = time.monotonic()
    if environ["PATH_INFO"] == "/hold":
        environ["wsgi.input"].read(1)
    answer = json.dumps({"arrived": environ.get(ARRIVED), "seen": seen}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
    return [answer]


app.queue_order = QueueOrder(os.environ["ASKED_FILE"])
