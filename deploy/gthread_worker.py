"""gunicorn's threaded worker, noting when each request reached it and taking a flooded model's last.

A gthread worker takes connections faster than its threads answer them: a request may wait in the
worker's queue before a thread picks it up. Two things change here, through the thread pool gunicorn lets a
worker choose (``get_thread_pool``); the rest is gunicorn's own ``gthread`` worker:

- **Arrival.** The app counts a caller's deadline (``X-Request-Timeout``) from the request's arrival,
  so the time it waited in that queue counts too: the pool notes when a request is handed to it
  (``time.monotonic()``, when the request became readable and was queued for a thread) and the worker puts
  that moment in the WSGI environ of an HTTP/1 request as ``ARRIVED``.
- **Order.** gunicorn's queue is first come, first served: a flooded model's requests, each refused or
  waiting for a slot once a thread takes it, stood in front of every other request of the worker (a
  quiet model's answer, ``/healthz``) and made it wait for all of them. Here the queue has two lanes.
  When the app has a ``queue_order`` (an object with ``active() -> bool``, cheap, whether any request
  may go to the back now, and ``later(head: bytes) -> bool``, whether the request whose first bytes are
  ``head`` does), the worker reads those bytes of a request as it queues it from its socket, without taking
  them off (``MSG_PEEK``), and a request ``later`` names is taken only when no other waits. Each lane is
  first come, first served. The API's order (``api/queue_order.py``) sends to the back the predictions of a
  model that holds its bound in this worker (``MAX_IN_FLIGHT_PER_MODEL``).
- **Wake-ups.** A request queued wakes one idle thread, as gunicorn's own pool does; while the order is active
  (a model holds its bound: a flood), every idle thread, and the first to get a core takes it.

What of gunicorn this uses, and nothing else: it subclasses ``gunicorn.workers.gthread.ThreadWorker`` and
overrides ``get_thread_pool()`` (documented there as the way to customize the pool) and ``run()`` (the base
worker's documented main loop, called here first); it reads the settings ``threads``, ``certfile`` and
``keyfile`` (``self.cfg``), wraps the loaded app (``self.wsgi``), and takes what the worker submits as
``submit(self.handle, conn)``, reading ``conn.sock``. ``tests/e2e/test_gthread_worker.py`` fails if gunicorn
stops submitting its connections that way.

Limits, each a lane only (nothing is dropped or refused for its lane): over TLS terminated by gunicorn itself
the bytes cannot be read this way and every request keeps the front lane. A request gunicorn has already read
into its parser when it queues it (a client that pipelines, sending a request before the last was answered,
or the rare body drain that reads past its body) is judged by the bytes still on the socket: usually none,
so it takes the front lane. nginx does not pipeline to its upstreams, nor do browsers. The streams of an HTTP/2
connection are all served by the one call its connection was submitted for: they keep the front lane (the
connection's first bytes name no prediction) and their arrival is when the app sees them.
"""
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial

from gunicorn.workers.gthread import ThreadWorker as GThreadWorker

from api.deadlines import ARRIVED

# The bytes of a request read (and left on its socket) to decide its lane: a request line and then some.
HEAD_BYTES = 512


class ThreadWorker(GThreadWorker):
    """gunicorn's gthread worker; each request's environ carries its arrival (``ARRIVED``), and a request the
    app's ``queue_order`` puts later is taken after the others."""

    def get_thread_pool(self):
        """The worker's threads (:class:`LanedPool`), started once the app is loaded (:meth:`run`)."""
        self._pool = LanedPool(self.cfg.threads)
        return self._pool

    def run(self):
        """gunicorn's loop, once the app is told each request's arrival and the threads are started, asking the
        app's ``queue_order`` which lane a request takes (unless gunicorn terminates TLS, which hides a request's
        bytes) and whether to wake every idle thread for it (while the order is active)."""
        order = getattr(self.wsgi, "queue_order", None)
        self.wsgi = Arrivals(self.wsgi, self._pool.arrival)
        tls = bool(self.cfg.certfile or self.cfg.keyfile)
        self._pool.start(later=partial(goes_later, order) if order is not None and not tls else None,
                         crowded=order.active if order is not None else None)
        super().run()


def goes_later(order, conn) -> bool:
    """Whether ``order`` puts the request on gunicorn's connection ``conn`` behind the others: asked only while it
    is active, with the request's first bytes left on its socket (``MSG_PEEK``); none when nothing was sent yet (a
    new connection) or the client went away."""
    if not order.active():
        return False
    try:
        head = conn.sock.recv(HEAD_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return False
    return bool(head) and order.later(head)


class LanedPool:
    """A fixed number of threads that run what is submitted, first come first served within each of two lanes,
    the back lane only when the front one is empty. What gunicorn's worker asks of its pool
    (``concurrent.futures.ThreadPoolExecutor``'s ``submit`` and ``shutdown``), and nothing more."""

    def __init__(self, threads: int):
        self._first: deque = deque()
        self._later: deque = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._size = threads
        self._threads: list[threading.Thread] = []
        self._is_later: Callable[..., bool] | None = None
        self._crowded: Callable[[], bool] | None = None
        self._running = threading.local()  # the arrival of the call this thread runs

    def start(self, later: Callable[..., bool] | None = None, crowded: Callable[[], bool] | None = None) -> None:
        """Start the threads (the worker does, as it starts running: never the constructor, which gunicorn's
        worker calls in its ``init_process``, before the app's lifecycle); ``later(*args)`` says whether a call
        submitted with ``args`` goes to the back lane (none: every call to the front); ``crowded()``, whether a
        call submitted now wakes every idle thread rather than one (none: one)."""
        self._is_later = later
        self._crowded = crowded
        # Daemons, as a worker's exit does not wait for them: gunicorn stops taking requests and waits for those
        # in flight (its graceful timeout) before it returns, and a worker that failed to boot has none.
        self._threads = [threading.Thread(target=self._run, name=f"request-{number}", daemon=True)
                         for number in range(self._size)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn, *args) -> Future:
        """Run ``fn(*args)`` on a thread, noting now as its arrival, after what waits in its lane (and, in the back
        lane, after the front one too); its future holds the result or the exception."""
        arrived = time.monotonic()
        later = self._is_later is not None and self._is_later(*args)
        crowded = self._crowded is not None and self._crowded()
        future: Future = Future()
        with self._ready:
            if self._stopping:
                raise RuntimeError("cannot schedule new work after shutdown")
            (self._later if later else self._first).append((future, fn, args, arrived))
            # While crowded, every idle thread, not one: the first to get a core takes it. On a full machine the one
            # thread a notify() wakes may wait milliseconds for a core while another idle thread could run now
            # (docs/operations.md, "Overload": refusals' p99 54 against 86 ms at the median of five pairs). Otherwise
            # one: waking them all cost each request three or four context switches for nothing ("Then: one thread
            # woken again, and every idle thread only during a flood").
            if crowded:
                self._ready.notify_all()
            else:
                self._ready.notify()
        return future

    def arrival(self) -> float | None:
        """When the call this thread runs was submitted (``time.monotonic()``); None off the pool's threads."""
        return getattr(self._running, "arrived", None)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take nothing more; with ``cancel_futures`` drop what waits (its futures cancelled), otherwise the threads
        run it first; with ``wait`` return once they have ended."""
        with self._ready:
            self._stopping = True
            if cancel_futures:
                for future, *_call in (*self._first, *self._later):
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
                future, fn, args, arrived = (self._first or self._later).popleft()
            if not future.set_running_or_notify_cancel():
                continue
            self._running.arrived = arrived
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001  (handed to the future, as an executor does)
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                self._running.arrived = None


class Arrivals:
    """WSGI: ``app``, with the arrival of the HTTP/1 request the thread answers put in the environ (``arrival()``).
    Not an HTTP/2 request's: its connection's streams are all served by one call, submitted before the first."""

    def __init__(self, app, arrival: Callable[[], float | None]):
        self.app = app
        self._arrival = arrival

    def __call__(self, environ, start_response):
        arrived = self._arrival()
        if arrived is not None and environ.get("SERVER_PROTOCOL", "").startswith("HTTP/1"):
            environ[ARRIVED] = arrived
        return self.app(environ, start_response)
