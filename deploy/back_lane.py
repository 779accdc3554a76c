"""A worker's back lane in a process of its own, at a lower CPU priority (``BACK_LANE_NICE``).

A worker's threads share one GIL, so they cannot run at different priorities: a low-priority thread would
hold the GIL a normal one waits for. Under a flood, the flooded model's requests (read, parsed, refused or
answered) then take the core at the same priority as every other model's answer, and a quiet model's tail
grows with the flood (docs/operations.md, "Overload"). With ``BACK_LANE_NICE`` set, each worker forks, before
it starts any thread, a copy of itself that takes no connection of its own: its **back process**. A request
the worker would put in its back lane (a prediction of a model at its bound in the worker,
``api/queue_order.py``) is handed to it instead, the connection's file descriptor passed over a Unix socket
(``SCM_RIGHTS``) with the moment the request arrived, so that its deadline still counts from then. The back
process answers that request with the same app, at the lower priority, and keeps the kept-alive connection while
the caller's next requests on it are predictions of the same model (its order holds them later there); the first
that is not goes back to the worker, unread, for the worker to order.

The pair stops together: on SIGTERM the worker stops sending on the socket, and each process answers what it
holds (the back process, what it was handed before), within gunicorn's graceful timeout; the worker then waits
for the back process to end. A back process whose worker died
stops (``PR_SET_PDEATHSIG``), and a worker whose back process died stops gracefully, for gunicorn to start
the pair again.

A message is one ``SOCK_SEQPACKET`` datagram: ``READY`` (no descriptor) once the back process serves,
``HANDED`` with the connection's descriptor and its arrival (``time.monotonic()``, the same clock in every
process of the machine) from the worker, ``RETURNED`` with a kept-alive connection's descriptor back (its next request unread).
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import signal
import socket
import struct
import time

# Once a model holds its bound in the worker, how long all of its predictions go to the back process, not only
# those beyond the bound: the flood's bodies are then read and parsed there too, at the lower priority.
HOLD_SECONDS = 1.0
READY = b"R"
HANDED = b"H"
RETURNED = b"K"
_ARRIVED = struct.Struct("=d")
_LARGEST = 1 + _ARRIVED.size
PR_SET_PDEATHSIG = 1


class InFlight:
    """The back process's predictions in flight, in memory the pair shares (mapped before the fork): the back
    process writes it as it changes, and its worker reads it to shed its shadow runs while the pair is busy."""

    def __init__(self):
        self._memory = mmap.mmap(-1, mmap.PAGESIZE)  # anonymous and shared: a child forked after sees the same page
        self._count = memoryview(self._memory).cast("q")

    def set(self, count: int) -> None:
        """Write the count (one aligned 8-byte store)."""
        self._count[0] = count

    def get(self) -> int:
        """The count last written."""
        return self._count[0]


class Channel:
    """One end of the socket between a worker and its back process, non-blocking: a send that would wait fails
    (the caller keeps the request), so that neither side's loop ever blocks on the other; and the back process's
    predictions in flight (``in_flight``), which both ends share."""

    def __init__(self, sock: socket.socket, in_flight: InFlight | None = None):
        self.sock = sock
        self.sock.setblocking(False)
        self.in_flight = in_flight if in_flight is not None else InFlight()

    def fileno(self) -> int:
        """The socket's descriptor, for a selector."""
        return self.sock.fileno()

    def ready(self) -> bool:
        """Say that the back process serves; False if the worker is gone."""
        return self._send(READY)

    def hand(self, sock: socket.socket, arrived: float) -> bool:
        """Pass ``sock``'s connection, whose request arrived at ``arrived``; False (nothing passed) if it cannot be
        now. The caller closes its own descriptor after a success: the connection stays open in the other."""
        return self._send(HANDED + _ARRIVED.pack(arrived), sock.fileno())

    def give_back(self, sock: socket.socket) -> bool:
        """Pass a kept-alive connection back, its next request unread; False (nothing passed) if it cannot be now."""
        return self._send(RETURNED, sock.fileno())

    def receive(self) -> tuple[list[tuple[bytes, socket.socket | None, float | None]], bool]:
        """Every message waiting now, as (kind, connection or None, arrival or None), and whether the other end has
        stopped sending (every message it sent before is among these or came earlier)."""
        messages = []
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(self.sock, _LARGEST, 1)
            except (BlockingIOError, InterruptedError):
                return messages, False
            except ConnectionError:
                return messages, True
            if not data and not fds:
                return messages, True
            connection = socket.socket(fileno=fds[0]) if fds else None
            arrived = _ARRIVED.unpack(data[1:])[0] if data[:1] == HANDED else None
            messages.append((data[:1], connection, arrived))

    def stop_sending(self) -> None:
        """Send nothing more: the other end sees the end once it has read what was sent (this end still reads)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:  # closed already, or the other end is gone
            pass

    def close(self) -> None:
        """Close this end: the other sees the end of the socket."""
        self.sock.close()

    def _send(self, data: bytes, fd: int | None = None) -> bool:
        try:
            socket.send_fds(self.sock, [data], [fd] if fd is not None else [], socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF):
                return False
            raise
        return True


def fork(nice: int) -> tuple[int, Channel]:
    """Fork the back process: in the worker, (its pid, the worker's end); in the back process, (0, its end), running
    at ``nice`` and stopped (SIGTERM, a graceful stop) if the worker dies. Call it before any thread starts."""
    parent = os.getpid()
    worker_end, back_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    in_flight = InFlight()
    pid = os.fork()
    if pid:
        back_end.close()
        return pid, Channel(worker_end, in_flight)
    worker_end.close()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the worker died before the line above: nothing would stop this process
        os._exit(0)
    os.setpriority(os.PRIO_PROCESS, 0, nice)  # this thread's; every thread it starts inherits it
    return 0, Channel(back_end, in_flight)


def wait(pid: int, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for the back process ``pid`` to end (it answers what it holds first), then
    kill it; reap it either way."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError):  # reaped or gone already
        pass
