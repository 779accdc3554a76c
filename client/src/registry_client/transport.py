"""The HTTP under the client: a bearer token, timeouts, retries on 503 and 429, one exception type."""
from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from registry_client.errors import RegistryError, RegistryUnreachable, TokenRejected

DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 3
MAX_RETRY_WAIT = 30.0
RETRIED_STATUSES = frozenset({429, 503})
# Methods sent again, once, on a new connection when the server hung up without answering: what they do
# is the same done twice (RFC 9110, 9.2.2), as a kept-alive connection's reuse needs (below).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# A server's hang-up: closed (http.client.RemoteDisconnected is a ConnectionResetError) or reset.
HANG_UPS = (ConnectionResetError, BrokenPipeError)


def path(*parts: str | int) -> str:
    """An API path from its segments, each escaped (``path("models", "a/b")`` is ``/models/a%2Fb``)."""
    return "/" + "/".join(quote(str(part), safe="") for part in parts)


class CappedRetry(Retry):
    """urllib3's retry of a 503 or 429, after the ``Retry-After`` the registry named, at most
    ``MAX_RETRY_WAIT`` seconds (urllib3 would wait as long as it is told)."""

    def get_retry_after(self, response) -> float | None:
        """The registry's ``Retry-After`` in seconds, capped; None when it named none."""
        wait = super().get_retry_after(response)
        return None if wait is None else min(wait, MAX_RETRY_WAIT)


def retry_policy(retries: int) -> Retry:
    """Send a request again on 503 or 429 only, up to ``retries`` times, whatever its method: the
    registry writes nothing when it answers either. Without a ``Retry-After``, waits double from half
    a second. Connection failures and timeouts are not retried here: they are answered at once (but see
    :meth:`Transport._send` for a connection the server hung up)."""
    return CappedRetry(
        total=retries, connect=0, read=0, other=0, status=retries, status_forcelist=RETRIED_STATUSES,
        allowed_methods=None, backoff_factor=0.5, backoff_max=MAX_RETRY_WAIT, raise_on_status=False,
        respect_retry_after_header=True,
    )


class Transport:
    """Sends requests to one registry and turns every failure into a :class:`RegistryError`.

    A 503 (not ready, a store or database briefly away) or 429 (rate limited) is sent again up to
    ``retries`` times (:func:`retry_policy`), so every method may be retried.
    """

    def __init__(self, base_url: str, token: str | None, timeout: float, retries: int):
        self.base_url = base_url.rstrip("/")
        self.token = token  # handed on to a batch job's executors, which fetch the artifact themselves
        self.timeout = timeout
        self.retries = retries
        self._session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry_policy(retries))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def send(self, method: str, url_path: str, *, allow: tuple[int, ...] = (), **kwargs) -> requests.Response:
        """The answer to a request; a status that is neither 2xx nor in ``allow`` raises RegistryError."""
        response = self._send(method, url_path, **kwargs)
        if response.ok or response.status_code in allow:
            return response
        raise _error_of(response)

    def json(self, method: str, url_path: str, **kwargs) -> dict:
        """The JSON object of a successful answer; anything else means the URL is not a registry."""
        return body_of(self.send(method, url_path, **kwargs))

    def _send(self, method: str, url_path: str, **kwargs) -> requests.Response:
        """The answer, sent once more on a new connection when the server hung up on an idempotent
        request: a kept-alive connection is reused just as the server closes it for being idle
        (gunicorn's keep-alive is 2 s), which urllib3's check before reuse cannot always see."""
        try:
            return self._request(method, url_path, **kwargs)
        except RegistryUnreachable as exc:
            if method.upper() not in IDEMPOTENT_METHODS or not _hung_up(exc):
                raise
        return self._request(method, url_path, **kwargs)

    def _request(self, method: str, url_path: str, **kwargs) -> requests.Response:
        try:
            return self._session.request(method, self.base_url + url_path, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise RegistryUnreachable(
                f"the registry at {self.base_url} did not answer within {self.timeout:g} s"
            ) from exc
        except requests.ConnectionError as exc:
            raise RegistryUnreachable(
                f"cannot reach the registry at {self.base_url}: {connection_failure(exc)}"
            ) from exc


def body_of(response: requests.Response) -> dict:
    """The JSON object of an answer, or a RegistryError saying the URL does not look like a registry."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RegistryError(
            f"expected a JSON object from {response.url}; is it a registry?", response.status_code
        )
    return body


def _error_of(response: requests.Response) -> RegistryError:
    problem = _problem(response)
    detail = " ".join(str(problem.get("detail") or problem.get("title") or "").split())
    detail = detail or f"{response.status_code} {response.reason}"
    if response.status_code == 401:
        return TokenRejected(f"token rejected by the registry (401): {detail}", 401, problem)
    if response.status_code == 403:
        return TokenRejected(f"token rejected: it lacks the role for this operation (403): {detail}", 403, problem)
    return RegistryError(f"registry answered {response.status_code}: {detail}", response.status_code, problem)


def _problem(response: requests.Response) -> dict:
    """The problem+json body of an error answer (a V2 ``{"error": …}`` counts as its detail); else {}."""
    try:
        body = response.json()
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    if "detail" not in body and isinstance(body.get("error"), str):
        return {**body, "detail": body["error"]}
    return body


def connection_failure(exc: BaseException) -> str:
    """Name the cause of a connection error: refused, unknown host, a TLS failure, a hang-up, or "connection failed"."""
    for current in _causes(exc):
        if isinstance(current, ConnectionRefusedError):
            return "connection refused (is the server running?)"
        if isinstance(current, socket.gaierror):
            return "host name does not resolve"
        if isinstance(current, ssl.SSLCertVerificationError):
            return (f"TLS certificate not trusted ({current.verify_message}); "
                    "set REQUESTS_CA_BUNDLE to the CA that signed it")
        if isinstance(current, ssl.SSLError):
            return f"TLS handshake failed ({current.reason or 'unknown reason'})"
        if isinstance(current, HANG_UPS):
            return "the server closed the connection without answering"
    return "connection failed"


def _hung_up(exc: BaseException) -> bool:
    """Whether the server closed the connection (or reset it) instead of answering."""
    return any(isinstance(current, HANG_UPS) for current in _causes(exc))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from, or carries (requests and urllib3 wrap theirs in
    ``args`` and ``reason``), each once."""
    seen = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # ssl errors carry their reason as a string: follow only the exceptions in the chain
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *getattr(current, "args", ())]
        stack.extend(link for link in linked if isinstance(link, BaseException))
