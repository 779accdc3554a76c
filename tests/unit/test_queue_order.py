"""The order a worker's threads take its queued requests (deploy/gthread_worker.py, api/queue_order.py): a
prediction of a model holding its bound goes behind every other request waiting; each lane is first come,
first served; the request's first bytes are read without taking them off its socket."""
import socket
import threading
from concurrent.futures import CancelledError
from types import SimpleNamespace

import pytest
from gunicorn.http.unreader import SocketUnreader

from api.prediction_routes import model_of
from api.queue_order import QueueOrder
from deploy.gthread_worker import LanedPool, ThreadWorker
from tests.unit.test_admission import admission

WAIT = 10  # seconds; a bound on waiting for an Event or a future, so a broken test fails instead of hanging


@pytest.fixture
def pool():
    laned = LanedPool(1)
    laned.start()
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
    futures = [pool.submit(ran.append, name, later=later)
               for name, later in (("hot 1", True), ("quiet 1", False), ("hot 2", True), ("healthz", False))]
    release.set()
    for future in futures:
        future.result(WAIT)
    assert ran == ["quiet 1", "healthz", "hot 1", "hot 2"]


def test_a_result_and_an_exception_reach_the_future(pool):
    assert pool.submit(lambda a, b: a + b, 2, 3).result(WAIT) == 5
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0, later=True).result(WAIT)
    assert pool.submit(lambda: "still running").result(WAIT) == "still running"  # the thread survived it


def test_shutdown_runs_what_waits_and_then_takes_nothing():
    laned = LanedPool(1)
    laned.start()
    release = blocked(laned)
    waiting = laned.submit(lambda: "ran", later=True)
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


class Order:
    """A queue_order that puts every request it is asked about later, and keeps what it was shown."""

    def __init__(self, active=True):
        self.heads, self._active = [], active

    def active(self):
        return self._active

    def later(self, head):
        self.heads.append(head)
        return True


def worker(order, *, ssl=False) -> ThreadWorker:
    """A ThreadWorker with only what its ``_later`` reads: its app's order and its settings."""
    made = ThreadWorker.__new__(ThreadWorker)
    made._order, made.cfg = order, SimpleNamespace(is_ssl=ssl)
    return made


def connection(sock, parser=None):
    return SimpleNamespace(sock=sock, parser=parser, is_http2=False)


def test_the_worker_reads_a_requests_first_bytes_and_leaves_them_on_its_socket():
    server, client = socket.socketpair()
    with server, client:
        server.setblocking(False)
        request = b"POST /models/hot/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        client.sendall(request)
        order = Order()
        assert worker(order)._later(connection(server))
        assert order.heads == [request]
        assert server.recv(4096) == request  # still there for the thread that answers it


def test_bytes_the_parser_read_ahead_are_the_head_and_nothing_is_read_without_an_active_order_tls_or_data():
    server, client = socket.socketpair()
    with server, client:
        server.setblocking(False)
        unreader = SocketUnreader(server)
        unreader.unread(b"POST /models/hot/predict HTTP/1.1\r\n")  # read ahead while draining the last body
        order = Order()
        assert worker(order)._later(connection(server, SimpleNamespace(unreader=unreader)))
        assert order.heads == [b"POST /models/hot/predict HTTP/1.1\r\n"]
        assert not worker(order)._later(connection(server))  # a new connection whose request has not arrived
        client.sendall(b"POST /models/hot/predict HTTP/1.1\r\n")
        assert not worker(Order(active=False))._later(connection(server))
        assert not worker(order, ssl=True)._later(connection(server))
        assert not worker(None)._later(connection(server))
        assert len(order.heads) == 1
