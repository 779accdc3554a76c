"""A request that stays in flight as long as a test wants: its body arrives in two parts, as from a slow
client on a poor link, so the server holds it open between ``start`` and ``finish``."""
import http.client
import json
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit


class TrickledPost:
    """A JSON POST sent in two parts: the headers and half the body at ``start``, the rest at ``finish``."""

    def __init__(self, url: str, path: str, payload: dict):
        self._address = urlsplit(url)
        self._path = path
        self._body = json.dumps(payload).encode()
        self._socket: socket.socket | None = None

    def start(self) -> None:
        """Connect and send the headers and the first half of the body: the server is now reading it."""
        self._socket = socket.create_connection((self._address.hostname, self._address.port), timeout=60)
        head = (f"POST {self._path} HTTP/1.1\r\nHost: {self._address.netloc}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(self._body)}\r\nConnection: close\r\n\r\n").encode()
        self._socket.sendall(head + self._body[: len(self._body) // 2])

    def finish(self) -> tuple[int, dict]:
        """Send the rest of the body; the answer's status and JSON body."""
        self._socket.sendall(self._body[len(self._body) // 2:])
        response = http.client.HTTPResponse(self._socket)
        try:
            response.begin()
            return response.status, json.loads(response.read())
        finally:
            response.close()
            self._socket.close()



def wait_until_master_said_not_ready(read_log: Callable[[], str], timeout: float = 60) -> None:
    """Wait until gunicorn's master handled the first SIGTERM (gunicorn.conf.py raises the workers'
    not-ready flag, then logs it): a signal reaches the master in its own time, and a request sent
    meanwhile may reach a worker before it."""
    _wait_for_log(read_log, lambda log: "not ready; stopping in" in log, "say it is not ready", timeout)


def wait_until_workers_told_to_stop(read_log: Callable[[], str], timeout: float = 60) -> None:
    """Wait until gunicorn's master handled SIGTERM a second time (the first only starts the drain,
    gunicorn.conf.py): its graceful stop has begun and it is telling its workers to stop."""
    _wait_for_log(read_log, lambda log: log.count("Handling signal: term") >= 2, "begin its graceful stop", timeout)


def _wait_for_log(read_log: Callable[[], str], seen: Callable[[str], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not seen(read_log()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gunicorn did not {what} in {timeout:.0f} s:\n{read_log()[-3000:]}")
        time.sleep(0.05)
