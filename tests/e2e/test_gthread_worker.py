"""The repository's gunicorn worker (deploy/gthread_worker.py) in a real gunicorn of one thread, serving a small app
(tests/e2e/gthread_app.py): what gunicorn hands its pool is each connection's ``handle``, so the app's order is
shown the request's first bytes as gunicorn queues it, a request it puts later is answered after one queued behind
it, and a request's arrival in its environ is when gunicorn queued it, before the thread was free. Should a
gunicorn upgrade queue its requests otherwise, this fails."""
import http.client
import json
import subprocess
import time

import pytest

from bench.harness.server import BIN, die_with_parent, free_port, wait_ready
from config import BASE_DIR

WAIT = 60  # seconds; a bound on waiting for the server, so a broken test fails instead of hanging


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """gunicorn on a free port, one worker of one thread: its address and the file of what the order was shown."""
    root = tmp_path_factory.mktemp("gthread-worker")
    port, asked, log_path = free_port(), root / "asked", root / "gunicorn.log"
    command = [str(BIN / "gunicorn"), "--worker-class", "deploy.gthread_worker.ThreadWorker", "--workers", "1",
               "--threads", "1", "--keep-alive", str(WAIT), "--no-control-socket", "--bind", f"127.0.0.1:{port}",
               "tests.e2e.gthread_app:app"]
    with open(log_path, "wb") as log:
        # Run from elsewhere than the repository, where gunicorn would read its gunicorn.conf.py.
        process = subprocess.Popen(command, cwd=root, env={"ASKED_FILE": str(asked), "PYTHONPATH": str(BASE_DIR)},
                                   stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log_path, WAIT)
        yield port, asked
    finally:
        process.terminate()
        process.wait(WAIT)


def kept_alive(port: int) -> http.client.HTTPConnection:
    """A connection whose first request was answered: gunicorn keeps it in its poller and queues its next request
    once that request's bytes are on the socket."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    connection.request("GET", "/warm")
    assert answer(connection)
    return connection


def answer(connection: http.client.HTTPConnection) -> dict:
    reply = connection.getresponse()
    assert reply.status == 200
    return json.loads(reply.read())


def shown(asked, line: bytes) -> None:
    """Wait until the app's order was shown a request starting with ``line``: gunicorn queued it."""
    deadline = time.monotonic() + WAIT
    while not (asked.exists() and line in asked.read_bytes().splitlines()):
        assert time.monotonic() < deadline, f"the order was never shown {line!r}: did gunicorn queue it otherwise?"
        time.sleep(0.005)


def test_a_request_put_later_waits_for_one_queued_after_it_and_each_arrived_when_queued(live):
    port, asked = live
    holder, later, front = kept_alive(port), kept_alive(port), kept_alive(port)
    holder.putrequest("POST", "/hold")
    holder.putheader("Content-Length", "1")
    holder.endheaders()  # its body's byte comes later: the thread holds until then
    shown(asked, b"POST /hold HTTP/1.1")
    later.request("GET", "/later")
    shown(asked, b"GET /later HTTP/1.1")
    front.request("GET", "/front")
    shown(asked, b"GET /front HTTP/1.1")
    released = time.monotonic()
    holder.send(b"x")
    held, late, first = answer(holder), answer(later), answer(front)
    assert held["seen"] < first["seen"] < late["seen"]  # /front, queued after /later, was answered before it
    for reply in (late, first):
        assert reply["arrived"] is not None and reply["arrived"] < released < reply["seen"]
