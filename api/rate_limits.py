"""Failed authentication is rate-limited per client address: after ``AUTH_FAILURES_PER_MINUTE`` bad
bearer tokens or refused sign-ins within a minute, every request from that address is answered 429
with ``Retry-After`` until the minute has passed.

Only failures count, so a client with a good token is never slowed. The counts live in each worker's
memory unless ``RATELIMIT_STORAGE_URI`` names a shared store (``redis://…``); behind a proxy, set
``PROXY_HOPS`` so the client's own address is counted, not the proxy's.

The counting is the ``limits`` library's (fixed windows, in any of its storages), called directly:
one check before each request and one count after a failed one, a few microseconds, where a
general-purpose limiter's per-request machinery cost the predict route a third of its time.
"""
import math
import time

from flask import Flask, Response, g, request
from limits import parse, storage, strategies
from werkzeug.exceptions import TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

EXTENSION = "auth_failure_limiter"
_FAILED = "authentication_failed"
# A load balancer's health checks are never refused, whoever shares its address.
HEALTH_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz", "ops.metrics", "v2.live", "v2.ready"})


class FailureLimit:
    """At most ``per_minute`` counted failures per client address within each minute."""

    def __init__(self, per_minute: int, storage_uri: str):
        self.limit = parse(f"{per_minute} per minute")
        self.windows = strategies.FixedWindowRateLimiter(storage.storage_from_string(storage_uri))

    def wait_seconds(self, address: str) -> int:
        """How long ``address`` must wait before it is answered again (0: it need not)."""
        if self.windows.test(self.limit, address):
            return 0
        reset_at, _ = self.windows.get_window_stats(self.limit, address)
        return max(1, math.ceil(reset_at - time.time()))

    def count(self, address: str) -> None:
        """Count one failure of ``address``."""
        self.windows.hit(self.limit, address)


def init_app(app: Flask) -> None:
    """Limit failed authentication on ``app``, with its own counters (one limit per app)."""
    hops = app.config["PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    per_minute = app.config["AUTH_FAILURES_PER_MINUTE"]
    if not per_minute:
        return
    limit = app.extensions[EXTENSION] = FailureLimit(per_minute, app.config["RATELIMIT_STORAGE_URI"])

    @app.before_request
    def refuse_while_over_the_limit() -> None:
        if request.endpoint not in HEALTH_ENDPOINTS:
            wait = limit.wait_seconds(_address())
            if wait:
                raise TooManyRequests(retry_after=wait)

    @app.after_request
    def count_failures(response: Response) -> Response:
        if response.status_code == 401 or g.get(_FAILED, False):
            limit.count(_address())
        return response


def count_failure() -> None:
    """Count this request as a failed authentication although it is not answered 401 (a refused sign-in)."""
    g.setdefault(_FAILED, True)


def address_of(environ: dict) -> str:
    """The client address a request is counted under (past ``PROXY_HOPS`` proxies once ProxyFix ran)."""
    return environ.get("REMOTE_ADDR") or "127.0.0.1"


def _address() -> str:
    return address_of(request.environ)
