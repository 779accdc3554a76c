"""The overload bench's callers (bench/harness/overload.py) time answers without their own process's garbage
collections in the way: none runs while they measure, and the process collects again afterwards; and they tell
a client timeout from a dropped or refused connection, on real sockets."""
import gc
import socket
import threading
import time

import pytest

from bench.harness.overload import Callers, no_collections, summary


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
