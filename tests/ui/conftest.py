"""Fixtures of the dashboard tests: a model with two versions, and a browser-like client that signs in."""
import re

import pytest

from tests.helpers import scaled_sum, upload_ok

CSRF_FIELD = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_of(response) -> str:
    """The CSRF token a dashboard page put in its form."""
    match = CSRF_FIELD.search(response.get_data(as_text=True))
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def submit(client, url: str, **fields):
    """Open the form at ``url`` and post it back with its CSRF token, as a browser does."""
    token = csrf_of(client.get(url))
    return client.post(url, data={"csrf_token": token, **fields})


@pytest.fixture
def housing(client, admin):
    """A model ``housing`` with versions 1 and 2 (metrics and params differ), v1 in production."""
    upload_ok(client, admin, "housing", scaled_sum(1.0), {"metrics": {"r2": 0.5, "mae": 1.25}, "params": {"depth": 3}})
    upload_ok(client, admin, "housing", scaled_sum(2.0), {"metrics": {"r2": 0.75}, "params": {"depth": 5}})
    assert client.post("/models/housing/versions/1/promote", json={}, headers=admin).status_code == 200
    return "housing"


@pytest.fixture
def sign_in(client):
    """``sign_in(token)``: sign the test client in to the dashboard with ``token``."""

    def sign(token: str):
        response = submit(client, "/ui/sign-in", token=token)
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    return sign
