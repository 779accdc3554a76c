"""A real webhook receiver on loopback for the tests: verifies every signature, answers as scripted."""
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

HANG_LIMIT_SECONDS = 120


class Hold:
    """Requests to an endpoint wait until ``release``; they are then answered with its status."""

    def __init__(self):
        self._released = threading.Event()
        self.arrived = threading.Event()  # set once a request is being held
        self.status = 200

    def release(self, status: int = 200) -> None:
        """Let held and later requests go, answering the held ones with ``status``."""
        self.status = status
        self._released.set()

    def wait(self) -> int:
        """Wait for the release (at most HANG_LIMIT_SECONDS); the status to answer with."""
        self.arrived.set()
        self._released.wait(HANG_LIMIT_SECONDS)
        return self.status


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    endpoint: str
    msg_id: str | None
    payload: dict | None  # the verified payload; None when verification failed
    error: str | None  # why verification failed
    status: int  # what the receiver answered
    at: float  # time.monotonic() when it was answered


class Receiver:
    """``url(name)`` is an endpoint; ``trust`` gives it its secret, ``script``/``hang`` its behaviour."""

    def __init__(self):
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        self._scripts: dict[str, list[int]] = {}
        self._holds: dict[str, Hold] = {}
        self._received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        for hold in list(self._holds.values()):
            hold.release()
        self._server.shutdown()
        self._server.server_close()

    def url(self, endpoint: str) -> str:
        """The URL of an endpoint of this receiver."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/{endpoint}"

    def trust(self, endpoint: str, secret: str) -> None:
        """Verify the endpoint's requests with ``secret``."""
        self._secrets[endpoint] = secret

    def script(self, endpoint: str, statuses: list[int]) -> None:
        """Answer the endpoint's next requests with these statuses, then 200."""
        self._scripts[endpoint] = list(statuses)

    def hang(self, endpoint: str) -> Hold:
        """Hold the endpoint's requests until the returned hold is released; later ones pass."""
        hold = Hold()
        self._holds[endpoint] = hold
        return hold

    def received(self, endpoint: str | None = None) -> list[Received]:
        """Requests so far (of one endpoint), in arrival order."""
        with self._lock:
            return [r for r in self._received if endpoint is None or r.endpoint == endpoint]

    def events(self, endpoint: str, event_type: str | None = None) -> list[dict]:
        """Verified payloads the endpoint acknowledged with 2xx (of one type)."""
        return [
            r.payload for r in self.received(endpoint)
            if r.payload is not None and r.status < 300 and (event_type is None or r.payload["type"] == event_type)
        ]

    def _handle(self, endpoint: str, headers: dict, body: bytes) -> int:
        hold = self._holds.get(endpoint)
        held_status = hold.wait() if hold is not None else None
        if hold is not None and self._holds.get(endpoint) is hold:
            del self._holds[endpoint]
        payload, error = None, None
        try:
            payload = Webhook(self._secrets[endpoint]).verify(body, headers)
        except (WebhookVerificationError, KeyError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            script = self._scripts.get(endpoint) or []
            status = script.pop(0) if script else 200
            if held_status is not None:
                status = held_status
            if error is not None:
                status = 400
            self._received.append(Received(endpoint, headers.get("webhook-id"), payload, error, status, time.monotonic()))
        return status

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._handle(self.path.lstrip("/"), headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler


def poll(check: Callable[[], object], timeout: float = 30.0, interval: float = 0.05):
    """``check()``'s first truthy value, polled until the deadline; AssertionError with the last value after it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s; last value: {value!r}")
        time.sleep(interval)
