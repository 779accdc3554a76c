"""One HTTP attempt at a delivery: signed per Standard Webhooks, short timeouts, public peers only."""
import socket
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from standardwebhooks import Webhook
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from registry.events.addresses import forbidden_reason
from registry.events.messages import Message, Outcome

USER_AGENT = "model-registry-webhooks/1"
MAX_ERROR_LENGTH = 500


def signed_headers(message: Message) -> dict[str, str]:
    """The Standard Webhooks headers (webhook-id, -timestamp, -signature) signed now, plus the content type.

    With several secrets the signature header holds one signature per secret, space-separated.
    """
    moment = datetime.now(timezone.utc)
    signatures = [Webhook(secret).sign(message.msg_id, moment, message.body) for secret in message.secrets]
    return {
        "webhook-id": message.msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class Sender:
    """Sends messages with a per-thread HTTP session; refuses non-public peers unless allowed.

    Besides the connect and read timeouts, each attempt has a total deadline that a receiver
    trickling its answer a byte at a time cannot stretch: when it passes, the socket is shut.
    """

    def __init__(self, timeout_seconds: float, allow_private: bool, deadline_seconds: float | None = None):
        self.timeout = timeout_seconds
        self.deadline = deadline_seconds or 2 * timeout_seconds
        self.allow_private = allow_private
        self._local = threading.local()

    def send(self, message: Message) -> Outcome:
        """POST the message once; never raises for what the network or the receiver does."""
        started = time.monotonic()
        cut = threading.Event()
        watchdog = threading.Timer(self.deadline, _shut_socket_of, args=(threading.get_ident(), cut))
        watchdog.start()
        try:
            response = self._session().post(
                message.url, data=message.body.encode(), headers=signed_headers(message),
                timeout=self.timeout, allow_redirects=False, stream=True,
            )
            response.close()
        except requests.RequestException as exc:
            if cut.is_set():
                return Outcome(None, f"deadline: no answer within {self.deadline:g} s", _ms_since(started))
            return Outcome(None, _describe(exc), _ms_since(started))
        finally:
            watchdog.cancel()
        error = "redirects are not followed; subscribe the final URL" if 300 <= response.status_code < 400 else None
        wait = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(timezone.utc))
        return Outcome(response.status_code, error, _ms_since(started), wait)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies from the environment: the peer must be the receiver
            adapter = _PeersAdapter(public_only=not self.allow_private)
            for scheme in ("http://", "https://"):
                session.mount(scheme, adapter)
            self._local.session = session
        return session


class AddressRefused(OSError):
    """The receiver's host resolved to an address webhooks may not reach."""


_sockets: dict[int, socket.socket] = {}  # the socket each sending thread uses now, for its deadline


def _shut_socket_of(thread_id: int, cut: threading.Event) -> None:
    """The deadline of a send passed: shut its socket, so whatever it waits for returns at once."""
    sock = _sockets.get(thread_id)
    if sock is None:
        return
    cut.set()
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # closed meanwhile: the send is over anyway


class _Peers:
    """Remembers the socket for the send's deadline and, for public-only sending, checks the address
    actually connected to, so a DNS change after subscribing cannot aim inward."""

    public_only = True

    def _new_conn(self):
        sock = super()._new_conn()
        address = sock.getpeername()[0]
        reason = forbidden_reason(address) if self.public_only else None
        if reason is not None:
            sock.close()
            raise AddressRefused(f"refused to deliver to {address}, a {reason} address")
        _sockets[threading.get_ident()] = sock
        return sock


class _PublicHTTPConnection(_Peers, HTTPConnection):
    pass


class _PublicHTTPSConnection(_Peers, HTTPSConnection):
    pass


class _AnyHTTPConnection(_Peers, HTTPConnection):
    public_only = False


class _AnyHTTPSConnection(_Peers, HTTPSConnection):
    public_only = False


def _pool(base, connection):
    """A connection pool class that opens ``connection``s."""
    return type(f"{base.__name__}For{connection.__name__}", (base,), {"ConnectionCls": connection})


_POOLS = {  # by public_only
    True: {"http": _pool(HTTPConnectionPool, _PublicHTTPConnection),
           "https": _pool(HTTPSConnectionPool, _PublicHTTPSConnection)},
    False: {"http": _pool(HTTPConnectionPool, _AnyHTTPConnection), "https": _pool(HTTPSConnectionPool, _AnyHTTPSConnection)},
}


class _PeersAdapter(HTTPAdapter):
    def __init__(self, public_only: bool):
        self._public_only = public_only
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS[self._public_only]


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header as seconds from ``now`` (it is either seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - now).total_seconds())


def _describe(exc: requests.RequestException) -> str:
    """A short, one-line reason: the innermost cause's message."""
    cause: BaseException = exc
    while cause.__cause__ is not None or (cause.args and isinstance(cause.args[-1], BaseException)):
        cause = cause.__cause__ or cause.args[-1]
    kind = "timeout" if isinstance(exc, requests.Timeout) else "connection error"
    return f"{kind}: {cause}"[:MAX_ERROR_LENGTH]


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
