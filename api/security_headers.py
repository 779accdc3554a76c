"""Security headers on every response: a Content-Security-Policy that lets a page run only the
service's own scripts and styles, no framing (the dashboard's action forms cannot be clickjacked),
no MIME sniffing, a referrer policy that keeps paths on this site, and no interest-based topics.

HTTPS is the proxy's business: nothing is redirected here, HSTS goes out only on requests that came
over HTTPS, and the session cookie is marked Secure then (``api/ui/session.py``).

The values are worked out once, at start: every response gets the same few (the API docs page its
own policy). flask-talisman, used before, built them again on every request from per-view options,
a quarter of the predict route's time for headers that never change.
"""
from flask import Flask, Response, request

from api.settings import settings_of

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
HSTS = "max-age=31556926; includeSubDomains"  # a year, as browsers' preload lists count it


def headers_with(policy: dict[str, str]) -> dict[str, str]:
    """Every response's security headers, with ``policy`` as its Content-Security-Policy."""
    return {
        "Permissions-Policy": "browsing-topics=()",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "; ".join(f"{directive} {sources}" for directive, sources in policy.items()),
        "Referrer-Policy": "same-origin",
    }


EVERYWHERE = headers_with(POLICY)  # the prediction routes' door (api/fast_predict.py) sends these too
ON_DOCS = headers_with(DOCS_POLICY)


def init_app(app: Flask) -> None:
    """Send the headers on every response of ``app``; the API docs page gets its own policy."""
    everywhere, on_docs = EVERYWHERE, ON_DOCS
    issuer = settings_of(app).sign_on.issuer
    if issuer:  # signing out of the dashboard is a form whose answer sends the browser on to the provider's sign-out
        origin = "/".join(issuer.split("/")[:3])
        everywhere = headers_with({**POLICY, "form-action": f"'self' {origin}"})
        on_docs = headers_with({**DOCS_POLICY, "form-action": f"'self' {origin}"})

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        response.headers.update(on_docs if request.endpoint == DOCS_VIEW else everywhere)
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = HSTS
        return response
