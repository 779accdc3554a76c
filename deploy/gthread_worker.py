"""gunicorn's threaded worker, noting when each request reached it and taking a flooded model's last.

A gthread worker takes connections faster than its threads answer them: a request may wait in the
worker's queue before a thread picks it up. Two things change here, the rest is gunicorn's own
``gthread`` worker:

- **Arrival.** The app counts a caller's deadline (``X-Request-Timeout``) from the request's arrival,
  so the time it waited in that queue counts too: this worker puts that moment (``time.monotonic()``,
  when the request became readable and was queued for a thread) in the WSGI environ as ``ARRIVED``.
- **Order.** gunicorn's queue is first come, first served: a flooded model's requests, each refused or
  waiting for a slot once a thread takes it, stood in front of every other request of the worker (a
  quiet model's answer, ``/healthz``) and made it wait for all of them. Here the queue has two lanes.
  When the app has a ``queue_order`` (an object with ``active() -> bool``, cheap, whether any request
  may go to the back now, and ``later(head: bytes) -> bool``, whether the request whose first bytes are
  ``head`` does), the worker reads those bytes of a request as it queues it, without taking them off the
  socket, and a request ``later`` names is taken only when no other waits. Each lane is first come,
  first served. The API's order (``api/queue_order.py``) sends to the back the predictions of a model
  that holds its bound in this worker (``MAX_IN_FLIGHT_PER_MODEL``).
"""
import socket
import threading
import time
from collections import deque
from concurrent.futures import Future

from gunicorn.workers.gthread import ThreadWorker as GThreadWorker

from api.deadlines import ARRIVED

# The bytes of a request read (and left on its socket) to decide its lane: a request line and then some.
HEAD_BYTES = 512


class ThreadWorker(GThreadWorker):
    """gunicorn's gthread worker; each request's environ carries its arrival (``ARRIVED``), and a request the
    app's ``queue_order`` puts later is taken after the others."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._handling = threading.local()  # the arrival of the request this thread answers
        self._order = None  # the app's queue_order, if it has one

    def run(self):
        """gunicorn's loop, with the request threads started first."""
        self.tpool.start()
        super().run()

    def get_thread_pool(self):
        """The worker's threads, taking requests from two lanes (:class:`LanedPool`)."""
        return LanedPool(self.cfg.threads)

    def load_wsgi(self):
        """Load the app as gunicorn does, called through :class:`Arrivals`; note its ``queue_order``."""
        super().load_wsgi()
        self._order = getattr(self.wsgi, "queue_order", None)
        self.wsgi = Arrivals(self.wsgi, self._handling)

    def enqueue_req(self, conn):
        """Queue ``conn``'s request for a thread, noting when, in the lane the app's order gives it."""
        conn.arrived = time.monotonic()
        future = self.tpool.submit(self.handle, conn, later=self._later(conn))
        future.add_done_callback(lambda done: self.method_queue.defer(self.finish_request, conn, done))

    def _later(self, conn) -> bool:
        """Whether the app's order puts ``conn``'s request behind the others: asked only while it is active,
        with the request's first bytes when they have arrived (over TLS or HTTP/2 they cannot be read)."""
        order = self._order
        if order is None or not order.active() or conn.is_http2 or self.cfg.is_ssl:
            return False
        head = self._head(conn)
        return bool(head) and order.later(head)

    @staticmethod
    def _head(conn) -> bytes:
        """The first bytes of ``conn``'s request, read into its parser or left on the socket (``MSG_PEEK``); none
        when nothing was sent yet (a new connection) or the client went away."""
        head = conn.parser.unreader.buf.getvalue() if conn.parser is not None else b""
        if not head:
            try:
                head = conn.sock.recv(HEAD_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except OSError:
                return b""
        return head[:HEAD_BYTES]

    def handle_request(self, req, conn):
        """Answer ``req`` as gunicorn does; the app finds when it arrived in its environ."""
        self._handling.arrived = getattr(conn, "arrived", None)
        try:
            return super().handle_request(req, conn)
        finally:
            self._handling.arrived = None


class LanedPool:
    """A fixed number of threads that run what is submitted, first come first served within each of two lanes,
    the ``later`` lane only when the other is empty. What gunicorn's worker asks of its pool
    (``concurrent.futures.ThreadPoolExecutor``'s ``submit`` and ``shutdown``), and nothing more."""

    def __init__(self, threads: int):
        self._first: deque = deque()
        self._later: deque = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._size = threads
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the threads (the worker does, as it starts running: never the constructor, which gunicorn's
        worker calls in its ``init_process``, before the app's lifecycle)."""
        # Daemons, as a worker's exit does not wait for them: gunicorn stops taking requests and waits for those
        # in flight (its graceful timeout) before it returns, and a worker that failed to boot has none.
        self._threads = [threading.Thread(target=self._run, name=f"request-{number}", daemon=True)
                         for number in range(self._size)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn, *args, later: bool = False) -> Future:
        """Run ``fn(*args)`` on a thread, after what waits in its lane (and, ``later``, after the other lane
        too); its future holds the result or the exception."""
        future: Future = Future()
        with self._ready:
            if self._stopping:
                raise RuntimeError("cannot schedule new work after shutdown")
            (self._later if later else self._first).append((future, fn, args))
            # Every idle thread, not one: the first to get a core takes it. On a full machine the one thread a
            # notify() wakes may wait milliseconds for a core while another idle thread could run now
            # (docs/operations.md, "Overload": refusals' p99 54 against 86 ms at the median of five pairs).
            self._ready.notify_all()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take nothing more; with ``cancel_futures`` drop what waits (its futures cancelled), otherwise the threads
        run it first; with ``wait`` return once they have ended."""
        with self._ready:
            self._stopping = True
            if cancel_futures:
                for future, _fn, _args in (*self._first, *self._later):
                    future.cancel()
                self._first.clear()
                self._later.clear()
            self._ready.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not (self._first or self._later or self._stopping):
                    self._ready.wait()
                if not (self._first or self._later):
                    return
                future, fn, args = (self._first or self._later).popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001  (handed to the future, as an executor does)
                future.set_exception(exc)
            else:
                future.set_result(result)


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
