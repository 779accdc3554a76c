"""The order a real gunicorn worker takes its queued requests in (deploy/gthread_worker.py): a prediction of a
model holding its bound waits behind every other request queued, whatever came first.

One worker of one thread, one prediction of a model at a time while others are asked: a long prediction of
``hot`` holds the thread, ten more of ``hot`` and then one of ``quiet`` queue behind it. The worker's access log
says in which order they were answered: ``quiet`` first, then ``hot``'s in the order they came. First come,
first served, ``quiet`` was answered last."""
import http.client
import json
import time
from urllib.parse import urlsplit

import numpy as np
import psutil
import pytest

from bench import models
from bench.harness import server
from bench.harness.overload import serve_models
from tests.databases import BACKEND, fresh_database
from tests.e2e.test_overload import niced_threads

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite", reason="the order is each worker's own, in memory; the database plays no part in it")

ADMIN_TOKEN = "e2e-queue-order-token"
LONG_ROWS = 100_000  # rows of the long prediction: 300 trees × 100,000 rows, tenths of a second on an idle machine
QUEUED = 10
WAIT = 60  # seconds; a bound on waiting for the server, so a broken test fails instead of hanging


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("queue-order")
    env = {"WORKER_THREADS": 1, "MAX_IN_FLIGHT_PER_MODEL": 1, "MAX_IN_FLIGHT": 1, "MAX_BATCH_ROWS": LONG_ROWS,
           "PREDICTION_LOG_SAMPLE": 0.0, "ACCESS_LOG": str(root / "access.log")}
    with fresh_database(root) as url, server.running(url, root, ADMIN_TOKEN, workers=1, env=env) as (live,):
        live.access_log = root / "access.log"
        yield live


def connected(url: str) -> http.client.HTTPConnection:
    """A kept-alive connection to the server, its first request answered (the worker keeps it in its poller)."""
    place = urlsplit(url)
    connection = http.client.HTTPConnection(place.hostname, place.port, timeout=WAIT)
    connection.request("GET", "/healthz")
    assert answered(connection) == 200
    return connection


def answered(connection: http.client.HTTPConnection) -> int:
    """The status of the answer to the request sent last on ``connection``, its body read."""
    reply = connection.getresponse()
    reply.read()
    return reply.status


def logged_predictions(access_log, count: int) -> list[str]:
    """The request lines of the predictions in ``access_log``, in the order answered, once it holds ``count`` of them.

    gunicorn writes a request's line after its answer is sent, so a caller may hold the answer a moment before
    the line is written."""
    deadline = time.monotonic() + WAIT
    while True:
        lines = [line for line in access_log.read_text().splitlines() if '"POST /models/' in line]
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, f"{len(lines)} predictions logged, not {count}"
        time.sleep(0.01)


def logged_paths(access_log, count: int) -> list[str]:
    """The paths of the predictions in ``access_log``, in the order answered, once it holds ``count`` of them."""
    return [line.split('"')[1].split()[1] for line in logged_predictions(access_log, count)]


def send(connection: http.client.HTTPConnection, path: str, body: bytes) -> None:
    connection.request("POST", path, body, {"Content-Type": "application/json"})


def test_a_model_at_its_bound_is_answered_after_the_others_queued_behind_it(live):
    (hot, small), (quiet, quiet_body) = serve_models(live)
    X, _ = models.training_data()
    long_body = json.dumps({"instances": np.resize(np.round(X, 6), (LONG_ROWS, X.shape[1])).tolist()}).encode()
    small = json.dumps({"instances": json.loads(small)["instances"][:1]}).encode()
    (worker,) = psutil.Process(live.process.pid).children()
    first, queued, last = connected(live.url), [connected(live.url) for _ in range(QUEUED)], connected(live.url)
    before = len(logged_paths(live.access_log, 0)) + 1
    send(last, f"/models/{quiet}/predict", quiet_body)  # quiet asked: hot keeps to its bound from now on
    assert answered(last) == 200

    send(first, f"/models/{hot}/production/predict", long_body)
    deadline = time.monotonic() + WAIT
    while not niced_threads(worker.pid):  # its walk runs (on a thread of its own, at nice 10)
        assert time.monotonic() < deadline, "the long prediction did not start"
        time.sleep(0.001)
    for connection in queued:
        send(connection, f"/models/{hot}/predict", small)
    send(last, f"/models/{quiet}/predict", quiet_body)
    assert niced_threads(worker.pid), "the long prediction ended before the others were queued: make it longer"

    statuses = [answered(connection) for connection in (first, *queued, last)]
    assert statuses == [200] * (QUEUED + 2)
    assert logged_paths(live.access_log, before + QUEUED + 2)[before:] == [
        f"/models/{hot}/production/predict", f"/models/{quiet}/predict", *[f"/models/{hot}/predict"] * QUEUED]
