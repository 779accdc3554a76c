"""Security headers on every response, set by flask-talisman: a Content-Security-Policy that lets a
page run only the service's own scripts and styles, no framing (the dashboard's action forms cannot
be clickjacked), no MIME sniffing, and a referrer policy that keeps paths on this site.

HTTPS is the proxy's business: nothing is redirected here, HSTS goes out only on requests that came
over HTTPS, and the session cookie is marked Secure then (``api/ui/session.py``).
"""
from functools import wraps

from flask import Flask
from flask_talisman import Talisman

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# Swagger UI at /docs starts from an inline script (flask-smorest's page) and styles its elements inline.
DOCS_POLICY = {**POLICY, "script-src": "'self' 'unsafe-inline'", "style-src": "'self' 'unsafe-inline'"}
DOCS_VIEW = "api-docs.openapi_swagger_ui"


def init_app(app: Flask) -> None:
    """Send the headers on every response of ``app``; the API docs page gets its own policy."""
    talisman = Talisman(
        app,
        force_https=False,
        frame_options="DENY",
        content_security_policy=POLICY,
        referrer_policy="same-origin",
        session_cookie_secure=bool(app.config.get("SESSION_COOKIE_SECURE")),
    )
    docs = app.view_functions.get(DOCS_VIEW)
    if docs is not None:
        app.view_functions[DOCS_VIEW] = talisman(content_security_policy=DOCS_POLICY)(_plain_function(docs))


def _plain_function(view):
    """``view`` as a plain function (flask-smorest's is a bound method, which takes no attributes)."""

    @wraps(view)
    def plain(*args, **kwargs):
        return view(*args, **kwargs)

    return plain
