"""Every response carries the security headers; the dashboard's pages need nothing the policy forbids."""
import re

import pytest

from tests.helpers import scaled_sum, upload_ok

STRICT = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "object-src": "'none'",
    "base-uri": "'none'", "form-action": "'self'", "frame-ancestors": "'none'",
}


def policy(response) -> dict[str, str]:
    directives = response.headers["Content-Security-Policy"].split(";")
    return dict(d.strip().split(" ", 1) for d in directives if d.strip())


@pytest.fixture
def served(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200


@pytest.mark.parametrize("method, path", [
    ("get", "/ui/"), ("get", "/ui/models/m"), ("get", "/ui/sign-in"), ("get", "/ui/models/m/aliases/production"),
    ("get", "/models/m"), ("get", "/models/nope"), ("post", "/models/m/predict"), ("get", "/healthz"),
    ("get", "/metrics"), ("get", "/openapi.json"),
])
def test_every_response_carries_the_headers(client, served, method, path):
    response = getattr(client, method)(path)
    assert {key: value for key, value in policy(response).items() if key in STRICT} == STRICT
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP: HSTS only behind HTTPS


def test_hsts_is_sent_over_https(client):
    response = client.get("/healthz", base_url="https://registry.example")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_the_api_docs_page_may_run_its_inline_start_script_and_nothing_else_relaxes(client):
    docs = policy(client.get("/docs"))
    assert docs["script-src"] == "'self' 'unsafe-inline'"
    assert (docs["frame-ancestors"], docs["object-src"]) == ("'none'", "'none'")


@pytest.mark.parametrize("path", ["/ui/", "/ui/models/m", "/ui/sign-in", "/ui/models/m/aliases/production",
                                  "/ui/models/m/history", "/ui/models/m/compare?v=1&v=1"])
def test_dashboard_pages_hold_no_inline_script_or_style(client, served, path):
    html = client.get(path).get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # every script comes from a file
    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
