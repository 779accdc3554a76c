"""The socket between a worker and its back process (deploy/back_lane.py): a connection handed over is the same
connection on the other side, with its arrival; nothing blocks; the end of either side is seen. And the setting
that turns it on (config.back_lane_nice)."""
import os
import socket

import pytest

from config import back_lane_nice
from deploy import back_lane


@pytest.fixture
def pair():
    worker_end, back_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    worker, back = back_lane.Channel(worker_end), back_lane.Channel(back_end)
    yield worker, back
    worker.close()
    back.close()


@pytest.fixture
def tcp():
    """A caller's TCP connection and the server's side of it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        caller = socket.create_connection(listener.getsockname())
        served, _ = listener.accept()
    yield caller, served
    caller.close()
    served.close()


def test_a_connection_handed_over_is_the_same_connection_with_its_arrival(pair, tcp):
    worker, back = pair
    caller, served = tcp
    assert worker.hand(served, 1234.5)
    served.close()  # the worker's descriptor: the connection stays open on the other side
    ((kind, connection, arrived),), ended = back.receive()
    assert (kind, arrived, ended) == (back_lane.HANDED, 1234.5, False)
    with connection:
        connection.sendall(b"answered by the back process")
        assert caller.recv(100) == b"answered by the back process"
        assert connection.getpeername() == caller.getsockname()
        assert back.give_back(connection)
    ((kind, returned, arrived),), _ended = worker.receive()
    assert (kind, arrived) == (back_lane.RETURNED, None)
    with returned:
        caller.sendall(b"next request")
        assert returned.recv(100) == b"next request"


def test_ready_and_several_messages_are_received_at_once_and_nothing_waits_when_none_came(pair, tcp):
    worker, back = pair
    assert worker.receive() == ([], False)
    assert back.ready()
    assert back.give_back(tcp[1]) and back.give_back(tcp[1])
    received, ended = worker.receive()
    assert not ended
    kinds = [kind for kind, _connection, _arrived in received]
    assert kinds == [back_lane.READY, back_lane.RETURNED, back_lane.RETURNED]
    for _kind, connection, _arrived in received[1:]:
        connection.close()


def test_a_full_socket_refuses_a_send_at_once_instead_of_blocking(pair, tcp):
    worker, back = pair
    sent = 0
    while worker.hand(tcp[1], 1.0):
        sent += 1
        assert sent < 100_000, "the socket never filled"
    assert sent > 0
    received = 0
    while messages := back.receive()[0]:
        for _kind, connection, _arrived in messages:
            connection.close()
            received += 1
    assert received == sent  # nothing lost: the refused one was never sent, and the sender kept it
    assert worker.hand(tcp[1], 1.0)  # room again
    back.receive()[0][0][1].close()


def test_the_end_is_seen_after_every_message_sent_before_it(pair, tcp):
    worker, back = pair
    assert worker.hand(tcp[1], 1.0) and worker.hand(tcp[1], 2.0)
    worker.stop_sending()
    messages, ended = back.receive()
    assert ended and [arrived for _kind, _connection, arrived in messages] == [1.0, 2.0]
    for _kind, connection, _arrived in messages:
        connection.close()
    assert back.give_back(tcp[1])  # the other way still goes
    ((kind, returned, _arrived),), _ended = worker.receive()
    assert kind == back_lane.RETURNED
    returned.close()


def test_either_end_sees_the_other_close(pair, tcp):
    worker, back = pair
    back.close()
    assert worker.receive() == ([], True)
    assert not worker.hand(tcp[1], 1.0)
    assert not worker.ready()


def test_a_back_process_runs_at_the_nice_value_asked_shares_its_count_and_its_worker_waits_for_it():
    pid, channel = back_lane.fork(7)
    if pid == 0:  # the back process: say its nice value, and end when the worker closes its end
        try:
            channel.sock.setblocking(True)
            channel.in_flight.set(3)  # its predictions in flight, in the page the pair shares
            channel.sock.send(str(os.getpriority(os.PRIO_PROCESS, 0)).encode())
            channel.sock.recv(1)
        finally:
            os._exit(0)
    channel.sock.setblocking(True)
    assert channel.sock.recv(10) == b"7"
    assert channel.in_flight.get() == 3
    assert os.getpriority(os.PRIO_PROCESS, 0) != 7  # the worker keeps its own
    channel.close()
    back_lane.wait(pid, 10)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped


@pytest.mark.parametrize("given, nice", [("off", None), ("OFF ", None), ("1", 1), ("10", 10), ("19", 19)])
def test_back_lane_nice_is_off_or_a_nice_value(given, nice):
    assert back_lane_nice(given) == nice


@pytest.mark.parametrize("given", ["0", "20", "-1", "idle", "on", "", "10.5"])
def test_back_lane_nice_refuses_anything_else_and_says_what_it_takes(given):
    with pytest.raises(ValueError, match="BACK_LANE_NICE must be off or a nice value from 1 to 19"):
        back_lane_nice(given)
