"""The order a worker's threads take its queued requests (deploy/gthread_worker.py, api/queue_order.py): a
prediction of a model holding its bound goes behind every other request waiting; each lane is first come,
first served; the request's first bytes are read without taking them off its socket; each call's arrival is
noted as it is submitted and reaches an HTTP/1 request's environ."""
import socket
import threading
import time
from concurrent.futures import CancelledError
from types import SimpleNamespace

import pytest
from gunicorn.workers.gthread import ThreadWorker as GThreadWorker

from api.deadlines import ARRIVED
from api.prediction_routes import model_of
from api.queue_order import QueueOrder
from deploy.gthread_worker import Arrivals, LanedPool, ThreadWorker, goes_later
from tests.unit.test_admission import admission

WAIT = 10  # seconds; a bound on waiting for an Event or a future, so a broken test fails instead of hanging


def hot(*args) -> bool:
    """The lanes of these tests: a call whose first argument names ``hot`` goes later."""
    return bool(args) and str(args[0]).startswith("hot")


@pytest.fixture
def pool():
    laned = LanedPool(1)
    laned.start(later=hot)
    yield laned
    laned.shutdown(wait=True, cancel_futures=True)


def blocked(pool: LanedPool) -> threading.Event:
    """Hold the pool's one thread until the Event returned is set."""
    release, started = threading.Event(), threading.Event()
    pool.submit(lambda: (started.set(), release.wait(WAIT)))
    assert started.wait(WAIT)
    return release


def test_the_later_lane_waits_until_the_other_is_empty_and_each_lane_keeps_its_order(pool):
    release, ran = blocked(pool), []
    futures = [pool.submit(ran.append, name) for name in ("hot 1", "quiet 1", "hot 2", "healthz")]
    release.set()
    for future in futures:
        future.result(WAIT)
    assert ran == ["quiet 1", "healthz", "hot 1", "hot 2"]


def test_a_result_and_an_exception_reach_the_future(pool):
    assert pool.submit(lambda a, b: a + b, 2, 3).result(WAIT) == 5
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda lane: 1 / 0, "hot").result(WAIT)
    assert pool.submit(lambda: "still running").result(WAIT) == "still running"  # the thread survived it


def test_shutdown_runs_what_waits_and_then_takes_nothing():
    laned = LanedPool(1)
    laned.start()
    release = blocked(laned)
    waiting = laned.submit(lambda: "ran")
    laned.shutdown(wait=False)
    release.set()
    assert waiting.result(WAIT) == "ran"
    with pytest.raises(RuntimeError, match="after shutdown"):
        laned.submit(lambda: None)
    laned.shutdown(wait=True)
    assert not any(thread.is_alive() for thread in laned._threads)


def test_shutdown_cancelling_drops_what_waits():
    laned = LanedPool(1)
    laned.start()
    release = blocked(laned)
    dropped = laned.submit(lambda: pytest.fail("a cancelled request ran"))
    laned.shutdown(wait=False, cancel_futures=True)
    release.set()
    with pytest.raises(CancelledError):
        dropped.result(WAIT)
    laned.shutdown(wait=True)


@pytest.mark.parametrize("head, model", [
    (b"POST /models/hot/predict HTTP/1.1\r\n", "hot"),
    (b"POST /models/hot/production/predict HTTP/1.1\r\n", "hot"),
    (b"POST /models/hot/3/predict?explain=true HTTP/1.1\r\n", "hot"),
    (b"POST /v2/models/hot.v1_x-2/infer HTTP/1.1\r\n", "hot.v1_x-2"),
    (b"POST /v2/models/hot/versions/3/infer HTTP/1.1\r\n", "hot"),
    (b"POST /models/hot/predict", None),  # the request line has not all arrived: not known to be a prediction
    (b"GET /models/hot/predict HTTP/1.1\r\n", None),
    (b"GET /models/hot HTTP/1.1\r\n", None),
    (b"POST /models/hot/versions HTTP/1.1\r\n", None),  # an upload
    (b"POST /models/hot/aliases/production/rollout HTTP/1.1\r\n", None),
    (b"POST /models/hot/production/predictions HTTP/1.1\r\n", None),
    (b"POST /models/%68ot/predict HTTP/1.1\r\n", None),
    (b"GET /healthz HTTP/1.1\r\n", None),
    (b"\x16\x03\x01\x02\x00", None),  # a TLS hello
])
def test_the_predictions_routes_name_their_model_and_nothing_else_is_one(head, model):
    assert model_of(head) == model


def test_only_a_model_holding_its_bound_goes_later():
    gate = admission(per_model=1, per_worker=3)
    order = QueueOrder(gate)
    hot = b"POST /models/hot/predict HTTP/1.1\r\n"
    assert not order.active() and not order.later(hot)  # nothing in flight: the worker does not even look
    with gate.admitted("hot"):
        assert order.active() and order.later(hot)
        assert not order.later(b"POST /v2/models/quiet/infer HTTP/1.1\r\n")
        assert not order.later(b"GET /healthz HTTP/1.1\r\n")
        assert order.later(b"POST /v2/models/hot/versions/2/infer HTTP/1.1\r\n")
    assert not order.later(hot)


def test_a_calls_arrival_is_when_it_was_submitted_not_when_a_thread_took_it(pool):
    release = blocked(pool)
    before = time.monotonic()
    queued = pool.submit(pool.arrival)
    after = time.monotonic()
    release.set()  # the thread takes the call after this
    assert before <= queued.result(WAIT) <= after
    assert pool.arrival() is None  # off the pool's threads
    assert pool.submit(pool.arrival).result(WAIT) > after  # each call its own


@pytest.mark.parametrize("protocol, arrival, noted", [
    ("HTTP/1.1", 12.5, 12.5), ("HTTP/1.0", 12.5, 12.5),
    ("HTTP/2.0", 12.5, None),  # one call serves all of a connection's streams: its submission is none's arrival
    ("HTTP/1.1", None, None),  # off the pool's threads
])
def test_the_arrival_reaches_an_http_1_requests_environ(protocol, arrival, noted):
    seen = {}
    Arrivals(lambda environ, start_response: seen.update(environ), lambda: arrival)({"SERVER_PROTOCOL": protocol}, None)
    assert seen.get(ARRIVED) == noted


class Order:
    """A queue_order that puts every request it is asked about later, and keeps what it was shown."""

    def __init__(self, active=True):
        self.heads, self._active = [], active

    def active(self):
        return self._active

    def later(self, head):
        self.heads.append(head)
        return True


def connection(sock):
    """What of gunicorn's connection the lanes read: its socket."""
    return SimpleNamespace(sock=sock)


def test_the_worker_reads_a_requests_first_bytes_and_leaves_them_on_its_socket():
    server, client = socket.socketpair()
    with server, client:
        server.setblocking(False)
        request = b"POST /models/hot/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        client.sendall(request)
        order = Order()
        assert goes_later(order, connection(server))
        assert order.heads == [request]
        assert server.recv(4096) == request  # still there for the thread that answers it


def test_nothing_is_read_without_an_active_order_or_data():
    server, client = socket.socketpair()
    with server, client:
        server.setblocking(False)
        order = Order()
        assert not goes_later(order, connection(server))  # a new connection whose request has not arrived
        client.sendall(b"POST /models/hot/predict HTTP/1.1\r\n")
        assert not goes_later(Order(active=False), connection(server))
        client.close()
        server.recv(4096)
        assert not goes_later(order, connection(server))  # the client went away
        assert order.heads == []


def running(order, monkeypatch, certfile=None) -> LanedPool:
    """The pool of a ThreadWorker whose app has ``order``, as its :meth:`run` leaves it (gunicorn's loop left out)."""
    monkeypatch.setattr(GThreadWorker, "run", lambda self: None)
    made = ThreadWorker.__new__(ThreadWorker)
    made.cfg = SimpleNamespace(threads=1, certfile=certfile, keyfile=None)
    made.wsgi = SimpleNamespace(queue_order=order)
    pool = made.get_thread_pool()
    made.run()
    assert isinstance(made.wsgi, Arrivals)
    return pool


@pytest.mark.parametrize("certfile, asked", [(None, True), ("server.pem", False)])
def test_the_worker_asks_its_apps_order_unless_it_terminates_tls(monkeypatch, certfile, asked):
    order = Order()
    pool = running(order, monkeypatch, certfile)
    server, client = socket.socketpair()
    with server, client:
        server.setblocking(False)
        client.sendall(b"POST /models/hot/predict HTTP/1.1\r\n")
        try:
            assert pool.submit(lambda conn: "answered", connection(server)).result(WAIT) == "answered"
        finally:
            pool.shutdown(wait=True)
    assert order.heads == ([b"POST /models/hot/predict HTTP/1.1\r\n"] if asked else [])


class CountedWakes(threading.Condition):
    """A pool's Condition that keeps the wake-ups asked of it: ``notify()`` as one, ``notify_all()`` as every."""

    def __init__(self):
        super().__init__()
        self.asked, self._every = [], False

    def notify(self, n=1):
        if not self._every:  # notify_all() calls notify(every waiter)
            self.asked.append("one")
        super().notify(n)

    def notify_all(self):
        self.asked.append("every")
        self._every = True
        try:
            super().notify_all()
        finally:
            self._every = False


def counted(pool: LanedPool) -> list[str]:
    """The wake-ups ``pool`` asks from now on (before it starts)."""
    pool._ready = CountedWakes()
    return pool._ready.asked


@pytest.mark.parametrize("crowded, woken", [(None, "one"), (False, "one"), (True, "every")])
def test_a_queued_call_wakes_every_idle_thread_only_while_crowded(crowded, woken):
    laned = LanedPool(3)
    wakes = counted(laned)
    laned.start(crowded=None if crowded is None else lambda: crowded)
    try:
        assert laned.submit(lambda: "answered").result(WAIT) == "answered"
        assert wakes == [woken]
    finally:
        laned.shutdown(wait=True)


def test_the_worker_wakes_every_idle_thread_while_its_apps_order_is_active(monkeypatch):
    monkeypatch.setattr(GThreadWorker, "run", lambda self: None)
    order = Order(active=False)
    worker = ThreadWorker.__new__(ThreadWorker)
    worker.cfg = SimpleNamespace(threads=2, certfile=None, keyfile=None)
    worker.wsgi = SimpleNamespace(queue_order=order)
    pool = worker.get_thread_pool()
    wakes = counted(pool)
    worker.run()
    server, client = socket.socketpair()
    with server, client:
        server.setblocking(False)
        try:
            assert pool.submit(lambda conn: "quiet", connection(server)).result(WAIT) == "quiet"
            order._active = True  # a model holds its bound: a flood
            assert pool.submit(lambda conn: "flooded", connection(server)).result(WAIT) == "flooded"
        finally:
            pool.shutdown(wait=True)
    assert wakes[:2] == ["one", "every"]  # then shutdown's
