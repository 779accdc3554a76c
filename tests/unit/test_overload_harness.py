"""The overload bench's callers (bench/harness/overload.py) time answers without their own process's garbage
collections in the way: none runs while they measure, and the process collects again afterwards; and they tell
a client timeout from a dropped or refused connection, on real sockets; a flood that keeps ahead offers its multiple
of what is answered whatever pace it started at."""
import gc
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.harness.overload import Callers, Flood, no_collections, summary


class Node:
    def __init__(self):
        self.me = self  # a cycle: only the collector frees it


def test_no_collection_runs_within_and_the_process_collects_again_after():
    assert gc.isenabled()
    with no_collections():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # what existed is out of any collection's way
        Node()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert gc.collect() >= 1  # the cycle made within was left for after


def test_an_error_within_still_gives_the_collector_back():
    with pytest.raises(RuntimeError), no_collections():
        raise RuntimeError("a caller failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def first_reply(url: str, timeout: float = 5.0):
    """The first reply of one paced caller POSTing to ``url`` (it sends once, then waits a minute for its turn)."""
    with Callers(url, b"{}", interval=60, timeout=timeout) as callers:
        while not callers.replies:
            time.sleep(0.01)
    return callers.replies[0]


@pytest.fixture
def listening():
    """A socket that listens, and its accepted connections (none answered unless the test does)."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


def test_a_server_that_never_answers_is_a_client_timeout(listening):
    reply = first_reply(f"http://127.0.0.1:{listening.getsockname()[1]}/", timeout=0.3)
    assert (reply.status, reply.failure, reply.kind) == (0, "timeout", "timeout")
    assert reply.ms >= 300 and reply.cpu_wait >= 0


def test_a_connection_closed_unanswered_is_dropped(listening):
    def close_after_reading():
        connection, _ = listening.accept()
        connection.recv(65536)
        connection.close()

    threading.Thread(target=close_after_reading, daemon=True).start()
    reply = first_reply(f"http://127.0.0.1:{listening.getsockname()[1]}/")
    assert (reply.status, reply.kind) == (0, "dropped")


def test_a_refused_connection_is_dropped_and_counted_apart_from_timeouts(listening):
    port = listening.getsockname()[1]
    timed_out = first_reply(f"http://127.0.0.1:{port}/", timeout=0.2)
    listening.close()  # nothing listens there any more: connection refused
    refused = first_reply(f"http://127.0.0.1:{port}/")
    assert refused.kind == "dropped"
    assert summary([timed_out, refused, refused], 1.0)["statuses"] == {"dropped": 2, "timeout": 1}


@pytest.fixture
def one_at_a_time():
    """An HTTP server that answers one request at a time in 0.1 s (200) and refuses the others at once (429): at
    most 10 answers a second, however much is offered."""
    slot = threading.Semaphore(1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            status = 429
            if slot.acquire(blocking=False):
                time.sleep(0.1)
                slot.release()
                status = 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_flood_that_keeps_ahead_offers_its_multiple_of_what_is_answered_from_too_low_a_start(one_at_a_time):
    # paced at 2 a second to start with, far below what the server answers (10 a second)
    with Flood(one_at_a_time, b"{}", threads=2, rate=2.0, ahead=8, longest=1.0) as flood:
        time.sleep(3.0)
        replies = flood.stop()
    answered = sum(reply.status == 200 for reply in replies)
    assert answered >= 10  # the server answered at about its pace
    assert flood.rate >= 8 * 5  # the pace rose to the answers it saw
    assert len(replies) >= 5 * answered


def test_a_flood_without_ahead_keeps_its_pace(one_at_a_time):
    with Flood(one_at_a_time, b"{}", threads=2, rate=10.0) as flood:
        time.sleep(2.0)
        replies = flood.stop()
    assert flood.rate == 10.0 and 10 <= len(replies) <= 25
