"""Each worker's back lane in a process of its own (``BACK_LANE_NICE``, deploy/back_lane.py), on a real gunicorn.

One worker of two threads, one prediction of a model at a time while others are asked, its back process at nice 10;
large walks at ``LOW_PRIORITY_NICE``'s default in the worker (nice 10) and as far below the back process (19). A
long prediction of ``hot`` holds the worker's bound; the next ``hot`` requests are handed to the back process and
answered there; the back process keeps their kept-alive connection for hot's next request, and gives it back to the
worker, that request unread, when the caller asks another model. gunicorn's access log says which process answered
each request (``%(p)s``, its pid). A graceful stop answers what the back process holds; a back process killed takes
its worker down, and gunicorn starts the pair again."""
import http.client
import json
import signal
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from bench import models
from bench.harness import server
from bench.harness.overload import serve_models
from tests.databases import BACKEND, fresh_database
from tests.e2e.test_overload import niced_threads
from tests.e2e.test_queue_order import connected, logged_predictions

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite", reason="the back process is each worker's own; the database plays no part in it")

ADMIN_TOKEN = "e2e-back-lane-token"
LONG_ROWS = 100_000  # rows of a long prediction: 300 trees × 100,000 rows, tenths of a second on an idle machine
BACK_NICE = 10
WORKER_WALK_NICE, BACK_WALK_NICE = 10, 19  # LOW_PRIORITY_NICE's default, in the worker and below the back process
WAIT = 60  # seconds; a bound on waiting for the server, so a broken test fails instead of hanging


def start(root: Path, url: str):
    env = {"WORKER_THREADS": 2, "MAX_IN_FLIGHT_PER_MODEL": 1, "MAX_IN_FLIGHT": 2, "MAX_BATCH_ROWS": LONG_ROWS,
           "BACK_LANE_NICE": BACK_NICE, "PREDICTION_LOG_SAMPLE": 0.0,
           "ACCESS_LOG": str(root / "access.log"), "GUNICORN_CMD_ARGS": "--access-logformat '%(p)s \"%(r)s\" %(s)s'"}
    return server.running(url, root, ADMIN_TOKEN, workers=1, env=env)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("back-lane")
    with fresh_database(root) as url, start(root, url) as (live,):
        live.access_log = root / "access.log"
        yield live


@pytest.fixture(scope="module")
def bodies(live):
    (hot, small), (quiet, quiet_body) = serve_models(live)
    X, _ = models.training_data()
    long_body = json.dumps({"instances": np.resize(np.round(X, 6), (LONG_ROWS, X.shape[1])).tolist()}).encode()
    small = json.dumps({"instances": json.loads(small)["instances"][:1]}).encode()
    return {"hot": (f"/models/{hot}/predict", small), "long": (f"/models/{hot}/production/predict", long_body),
            "quiet": (f"/models/{quiet}/predict", quiet_body)}


def pair(live) -> tuple[psutil.Process, psutil.Process]:
    """The worker and its back process, once both run."""
    deadline = time.monotonic() + WAIT
    while True:
        workers = psutil.Process(live.process.pid).children()
        if len(workers) == 1 and len(children := workers[0].children()) == 1:
            return workers[0], children[0]
        assert time.monotonic() < deadline, f"no worker with its back process: {workers}"
        time.sleep(0.05)


def wait_walking(pid: int, nice: int) -> None:
    """Wait until process ``pid`` runs a large walk: a thread at ``nice``."""
    deadline = time.monotonic() + WAIT
    while not niced_threads(pid, nice):
        assert time.monotonic() < deadline, f"process {pid} did not start its long prediction"
        time.sleep(0.001)


def send(connection: http.client.HTTPConnection, request: tuple[str, bytes]) -> None:
    connection.request("POST", request[0], request[1], {"Content-Type": "application/json"})


def answered(connection: http.client.HTTPConnection) -> tuple[int, bytes]:
    reply = connection.getresponse()
    return reply.status, reply.read()


def answerers(access_log: Path, count: int) -> list[tuple[int, str, str]]:
    """(pid, path, status) of the predictions in ``access_log`` in the order answered, once it holds ``count``."""
    return [(int(line.split()[0].strip("<>")), line.split('"')[1].split()[1], line.split()[-1])
            for line in logged_predictions(access_log, count)]


def test_a_model_at_its_bound_is_answered_by_the_back_process_which_keeps_its_connection_for_it(live, bodies):
    worker, back = pair(live)
    assert (worker.nice(), back.nice()) == (0, BACK_NICE)
    assert back.num_threads() < worker.num_threads()  # its worker runs the background loops and webhook deliveries
    first, other = connected(live.url), connected(live.url)
    earlier = len(answerers(live.access_log, 0))
    send(other, bodies["quiet"])  # quiet asked: hot keeps to its bound from now on
    assert answered(other)[0] == 200
    before = len(answerers(live.access_log, earlier + 1))  # its line is written once it is answered: wait for it

    send(first, bodies["long"])
    wait_walking(worker.pid, WORKER_WALK_NICE)  # the long prediction holds hot's one slot in the worker
    send(other, bodies["hot"])
    status, body = answered(other)
    assert status == 200 and len(json.loads(body)["predictions"]) == 1
    assert niced_threads(worker.pid, WORKER_WALK_NICE), \
        "the long prediction ended before hot was asked again: make it longer"
    worker.suspend()  # SIGSTOP: the worker can neither take a request nor hand one over
    try:
        send(other, bodies["hot"])  # the same connection: hot's next request, kept by the back process
        assert answered(other)[0] == 200
    finally:
        worker.resume()
    send(other, bodies["quiet"])  # the same connection again, given back to the worker with this request unread
    assert answered(other)[0] == 200
    assert answered(first)[0] == 200

    logged = answerers(live.access_log, before + 4)[before:]
    assert logged[:2] == [(back.pid, bodies["hot"][0], "200")] * 2
    # The worker's two answers in either order: on a busy machine the long walk may end before quiet is answered.
    assert sorted(logged[2:]) == sorted([(worker.pid, bodies["quiet"][0], "200"), (worker.pid, bodies["long"][0], "200")])


def test_a_back_process_that_dies_takes_its_worker_down_and_gunicorn_starts_the_pair_again(live, bodies):
    worker, back = pair(live)
    back.kill()
    worker.wait(WAIT)  # it stopped on its own, gracefully: gunicorn's master did not kill it
    new_worker, new_back = pair(live)
    assert new_worker.pid != worker.pid and new_back.nice() == BACK_NICE
    server.wait_ready(live.url, live.process, live.log_path)
    answer = requests.post(f"{live.url}{bodies['hot'][0]}", data=bodies["hot"][1], timeout=WAIT,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    assert f"back process {back.pid} ended" in live.log_path.read_text()


def test_a_graceful_stop_answers_what_the_back_process_holds(tmp_path, bodies):
    with fresh_database(tmp_path) as url, start(tmp_path, url) as (stopping,):
        (hot, _small), _quiet = serve_models(stopping)
        long_path = f"/models/{hot}/production/predict"
        worker, back = pair(stopping)
        first, second = connected(stopping.url), connected(stopping.url)
        first.request("POST", long_path, bodies["long"][1], {"Content-Type": "application/json"})
        wait_walking(worker.pid, WORKER_WALK_NICE)
        second.request("POST", long_path, bodies["long"][1], {"Content-Type": "application/json"})
        wait_walking(back.pid, BACK_WALK_NICE)  # handed over, and computing there, below its process's own nice 10
        stopping.process.send_signal(signal.SIGTERM)
        assert [answered(first)[0], answered(second)[0]] == [200, 200]
        assert stopping.process.wait(WAIT) == 0
        assert not back.is_running()
        assert [(pid, status) for pid, _path, status in answerers(tmp_path / "access.log", 2)[-2:]] in (
            [(worker.pid, "200"), (back.pid, "200")], [(back.pid, "200"), (worker.pid, "200")])
