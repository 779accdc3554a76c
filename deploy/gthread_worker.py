"""gunicorn's threaded worker, noting when each request reached it.

A gthread worker takes connections faster than its threads answer them: a request may wait in the
worker's queue before a thread picks it up. The app counts a caller's deadline (``X-Request-Timeout``)
from the request's arrival, so the time it waited there counts too: this worker puts that moment
(``time.monotonic()``, when the request became readable and was queued for a thread) in the WSGI
environ as ``ARRIVED``. Everything else is gunicorn's own ``gthread`` worker, unchanged.
"""
import threading
import time

from gunicorn.workers.gthread import ThreadWorker as GThreadWorker

# The WSGI environ key of a request's arrival, on time.monotonic()'s clock.
ARRIVED = "registry.arrived"


class ThreadWorker(GThreadWorker):
    """gunicorn's gthread worker; each request's environ carries its arrival (``ARRIVED``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._handling = threading.local()  # the arrival of the request this thread answers

    def load_wsgi(self):
        """Load the app as gunicorn does, called through :class:`Arrivals`."""
        super().load_wsgi()
        self.wsgi = Arrivals(self.wsgi, self._handling)

    def enqueue_req(self, conn):
        """Queue ``conn``'s request for a thread, noting when."""
        conn.arrived = time.monotonic()
        super().enqueue_req(conn)

    def handle_request(self, req, conn):
        """Answer ``req`` as gunicorn does; the app finds when it arrived in its environ."""
        self._handling.arrived = getattr(conn, "arrived", None)
        try:
            return super().handle_request(req, conn)
        finally:
            self._handling.arrived = None


class Arrivals:
    """WSGI: ``app``, with the arrival of the request the thread answers put in the environ."""

    def __init__(self, app, handling: threading.local):
        self.app = app
        self._handling = handling

    def __call__(self, environ, start_response):
        arrived = getattr(self._handling, "arrived", None)
        if arrived is not None:
            environ[ARRIVED] = arrived
        return self.app(environ, start_response)
