"""Failed authentication is rate-limited per client address (Flask-Limiter): after
``AUTH_FAILURES_PER_MINUTE`` bad bearer tokens or refused sign-ins within a minute, every request
from that address is answered 429 with ``Retry-After`` until the minute has passed.

Only failures count, so a client with a good token is never slowed. The counts live in each worker's
memory unless ``RATELIMIT_STORAGE_URI`` names a shared store (``redis://…``); behind a proxy, set
``PROXY_HOPS`` so the client's own address is counted, not the proxy's.
"""
from flask import Flask, Response, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

EXTENSION = "auth_failure_limiter"
_FAILED = "authentication_failed"
# A load balancer's health checks are never refused, whoever shares its address.
HEALTH_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz", "ops.metrics", "v2.live", "v2.ready"})


def init_app(app: Flask) -> None:
    """Limit failed authentication on ``app``, with its own counters (one limiter per app)."""
    hops = app.config["PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    per_minute = app.config["AUTH_FAILURES_PER_MINUTE"]
    app.extensions[EXTENSION] = Limiter(
        get_remote_address,
        app=app,
        application_limits=[f"{per_minute} per minute"] if per_minute else [],
        application_limits_deduct_when=_failed,
        application_limits_exempt_when=lambda: request.endpoint in HEALTH_ENDPOINTS,
        headers_enabled=True,
        storage_uri=app.config["RATELIMIT_STORAGE_URI"],
    )


def count_failure() -> None:
    """Count this request as a failed authentication although it is not answered 401 (a refused sign-in)."""
    g.setdefault(_FAILED, True)


def _failed(response: Response) -> bool:
    return response.status_code == 401 or g.get(_FAILED, False)
