"""gunicorn's threaded worker, noting when each request reached it and taking a flooded model's last (or handing
them to a process of lower priority).

A gthread worker takes connections faster than its threads answer them: a request may wait in the
worker's queue before a thread picks it up. Three things change here, the rest is gunicorn's own
``gthread`` worker:

- **Arrival.** The app counts a caller's deadline (``X-Request-Timeout``) from the request's arrival,
  so the time it waited in that queue counts too: this worker puts that moment (``time.monotonic()``,
  when the request became readable and was queued for a thread) in the WSGI environ as ``ARRIVED``.
- **Order.** gunicorn's queue is first come, first served: a flooded model's requests, each refused or
  waiting for a slot once a thread takes it, stood in front of every other request of the worker (a
  quiet model's answer, ``/healthz``) and made it wait for all of them. Here the queue has two lanes.
  When the app has a ``queue_order`` (an object with ``active() -> bool``, cheap, whether any request
  may go to the back now, and ``later(head: bytes, hold_seconds: float) -> bool``, whether the request whose first bytes are
  ``head`` does), the worker reads those bytes of a request as it queues it, without taking them off the
  socket, and a request ``later`` names is taken only when no other waits. Each lane is first come,
  first served. The API's order (``api/queue_order.py``) sends to the back the predictions of a model
  that holds its bound in this worker (``MAX_IN_FLIGHT_PER_MODEL``).
- **A back process.** With ``BACK_LANE_NICE``, the back lane is a process of its own at that nice value,
  forked by the worker as it starts (``deploy/back_lane.py``): the worker hands it the connection of each
  request it would put there, and of every prediction of a model that held its bound in the last second; the
  back process answers it with the same app (told so first: its order's ``serve_behind(nice, in_flight)``; the
  worker's is told ``serve_before(back_in_flight)``, and sheds by the pair's predictions in flight). It keeps a
  kept-alive connection while its order holds the model of the connection's next request later (held a second
  from each request handed to it, ``hold(head, seconds)``, and while the model holds its bound there), and gives
  the connection back to the worker, that request unread, when it does not.
"""
import os
import selectors
import socket
import threading
import time
from collections import deque
from concurrent.futures import Future
from functools import partial

from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn
from gunicorn.workers.gthread import ThreadWorker as GThreadWorker

from api.deadlines import ARRIVED
from config import BACK_LANE_NICE
from deploy import back_lane

# The bytes of a request read (and left on its socket) to decide its lane: a request line and then some.
HEAD_BYTES = 512


class ThreadWorker(GThreadWorker):
    """gunicorn's gthread worker; each request's environ carries its arrival (``ARRIVED``), and a request the
    app's ``queue_order`` puts later is taken after the others."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._handling = threading.local()  # the arrival of the request this thread answers
        self._order = None  # the app's queue_order, if it has one
        # With BACK_LANE_NICE (deploy/back_lane.py): the socket to the other process of the pair, whether this
        # process is the back one, the back process's pid (in the worker), and whether it serves yet.
        self._pair: back_lane.Channel | None = None
        self.is_back = False
        self.back_pid: int | None = None
        self._back_ready = False

    def init_process(self):
        """With ``BACK_LANE_NICE``, fork the back process first (no thread runs yet); then start as gunicorn's
        worker does, each process of the pair with its own app, lifecycle and threads."""
        if BACK_LANE_NICE is not None:
            pid, self._pair = back_lane.fork(BACK_LANE_NICE)
            if pid:
                self.back_pid = pid
            else:
                self._become_back()
        super().init_process()

    def _become_back(self) -> None:
        """This process is the back one: it takes no connection of its own, only what its worker hands it."""
        self.is_back = True
        self.pid, self.ppid = os.getpid(), os.getppid()
        for listener in self.sockets:
            listener.close()
        self.sockets = []

    def notify(self):
        """Tell gunicorn's master this worker is alive; a back process does not speak for its worker."""
        if not self.is_back:
            super().notify()

    def handle_exit(self, sig, frame):
        """SIGTERM, a graceful stop: as gunicorn's, and the back process is told (it answers what it was handed
        before, while this worker answers what it holds)."""
        super().handle_exit(sig, frame)
        if self.back_pid is not None:
            self._pair.stop_sending()

    def run(self):
        """gunicorn's loop, with the request threads started and the pair's socket watched; once it ends, the pair
        stops together."""
        self.tpool.start()
        if self._pair is not None:
            self.poller.register(self._pair, selectors.EVENT_READ, self._from_pair)
            if self.is_back and not self._pair.ready():
                self.alive = False
        try:
            super().run()
        finally:
            if self._pair is not None:
                self._pair.close()  # the back process sees the end (if it has not yet), answers what it holds and stops
                if self.back_pid is not None:
                    back_lane.wait(self.back_pid, self.cfg.graceful_timeout)

    def _from_pair(self, _pair) -> None:
        """What the other process of the pair sent: a back process ready, a request handed, a connection back; or
        its end (a worker stopping, or a back process gone: this worker stops too, and gunicorn starts another)."""
        messages, ended = self._pair.receive()
        for kind, sock, arrived in messages:
            if kind == back_lane.READY:
                self._back_ready = not self.is_back
            elif kind == back_lane.HANDED and self.is_back:
                self._serve_handed(sock, arrived)
            elif kind == back_lane.RETURNED and not self.is_back:
                self._keep_alive(sock)
            elif sock is not None:
                sock.close()
        if ended:
            self.poller.unregister(self._pair)
            self._back_ready = False
            if not self.is_back and self.alive:
                self.log.warning("back process %s ended; stopping this worker for gunicorn to start another",
                                 self.back_pid)
            self.alive = False

    def _serve_handed(self, sock: socket.socket, arrived: float) -> None:
        """Queue the request handed on ``sock`` (it arrived at ``arrived``) for a thread of this back process."""
        try:
            conn = TConn(self.cfg, sock, sock.getpeername(), sock.getsockname())
        except OSError:  # the caller went away meanwhile
            sock.close()
            return
        conn.data_ready = True  # the worker saw its request readable
        conn.arrived = arrived
        if self._order is not None:  # its model's next requests on kept-alive connections stay here a while
            self._order.hold(self._head(conn), back_lane.HOLD_SECONDS)
        self.nr_conns += 1
        self._submit(conn, later=False)

    def _keep_alive(self, sock: socket.socket) -> None:
        """Wait for the next request on a kept-alive connection the back process gave back, as on any other."""
        try:
            conn = TConn(self.cfg, sock, sock.getpeername(), sock.getsockname())
        except OSError:
            sock.close()
            return
        self.nr_conns += 1
        conn.set_timeout()
        if not self.alive:
            conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
        self.keepalived_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def get_thread_pool(self):
        """The worker's threads, taking requests from two lanes (:class:`LanedPool`)."""
        return LanedPool(self.cfg.threads)

    def load_wsgi(self):
        """Load the app as gunicorn does, called through :class:`Arrivals`; note its ``queue_order``, and tell it,
        with a back process, which process of the pair this is."""
        super().load_wsgi()
        self._order = getattr(self.wsgi, "queue_order", None)
        if self._order is not None and self._pair is not None:
            if self.is_back:
                self._order.serve_behind(BACK_LANE_NICE, self._pair.in_flight.set)
            else:
                self._order.serve_before(self._pair.in_flight.get)
        self.wsgi = Arrivals(self.wsgi, self._handling)

    def enqueue_req(self, conn):
        """Queue ``conn``'s request for a thread, noting when, in the lane the app's order gives it. In a back
        process (the next request on a connection it kept alive), only a request its order still holds later is
        answered here; another goes back to the worker, unread."""
        conn.arrived = time.monotonic()
        later = self._later(conn)
        if self.is_back:
            if later or not self._give_back(conn):
                self._submit(conn, later=False)
        elif not (later and self._hand_over(conn)):
            self._submit(conn, later)

    def _submit(self, conn, later: bool) -> None:
        future = self.tpool.submit(self.handle, conn, later=later)
        future.add_done_callback(lambda done: self.method_queue.defer(self.finish_request, conn, done))

    def _hand_over(self, conn) -> bool:
        """Pass ``conn``'s request to the back process, if there is one that serves and the request is all on the
        socket (not partly read into this worker's parser); whether it went."""
        if not (self._back_ready and self.alive) or (conn.parser is not None and conn.parser.unreader.buf.getvalue()):
            return False
        if not self._pair.hand(conn.sock, conn.arrived):
            return False
        self.nr_conns -= 1
        conn.close()  # this process's descriptor; the connection stays open in the back process
        return True

    def _give_back(self, conn) -> bool:
        """Give ``conn`` and its next request, unread, back to the worker, unless this back process stops or has
        read some of that request already, or the socket to the worker is full; whether it went."""
        if not self.alive or (conn.parser is not None and conn.parser.unreader.buf.getvalue()):
            return False
        if not self._pair.give_back(conn.sock):
            return False
        self.nr_conns -= 1
        conn.close()  # this process's descriptor; the worker has the connection now
        return True

    def _later(self, conn) -> bool:
        """Whether the app's order puts ``conn``'s request behind the others: asked only while it is active,
        with the request's first bytes when they have arrived (over TLS or HTTP/2 they cannot be read)."""
        order = self._order
        if order is None or not order.active() or conn.is_http2 or self.cfg.is_ssl:
            return False
        head = self._head(conn)
        if not head:
            return False
        held = self._back_ready or self.is_back  # the back process's models are held there
        return order.later(head, hold_seconds=back_lane.HOLD_SECONDS if held else 0.0)

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
