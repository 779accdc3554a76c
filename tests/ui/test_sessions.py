"""Dashboard sessions end for real: a copied cookie stops working at sign-out, at token revocation
and at the end of its lifetime; sign-in sends you on only to a dashboard path."""
from datetime import timedelta

import pytest
from sqlalchemy import update

from registry.db import db
from registry.tables import BrowserSession, utcnow
from tests.helpers import ADMIN_TOKEN
from tests.ui.conftest import csrf_of


def copy_of_cookie(app, client):
    """A second browser holding a copy of ``client``'s session cookie (as a thief would)."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def signed_in_as(client) -> bool:
    return "Signed in as" in client.get("/ui/").get_data(as_text=True)


def may_open_the_promote_form(client) -> bool:
    return client.get("/ui/models/housing/versions/2/promote").status_code == 200


def test_a_cookie_copied_before_sign_out_is_worth_nothing_after_it(app, client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    thief = copy_of_cookie(app, client)
    assert may_open_the_promote_form(thief)

    token = csrf_of(client.get("/ui/"))  # the sign-out form is on every page
    assert client.post("/ui/sign-out", data={"csrf_token": token}).status_code == 302

    assert not may_open_the_promote_form(thief)
    assert not signed_in_as(thief)
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_revoking_the_token_ends_its_sessions(app, client, housing, admin, sign_in):
    token = client.post("/tokens", json={"name": "ops", "role": "admin"}, headers=admin).get_json()["token"]
    sign_in(token)
    assert may_open_the_promote_form(client)
    assert client.delete("/tokens/ops", headers=admin).status_code == 204
    assert not may_open_the_promote_form(client)


def test_a_session_ends_with_its_lifetime(app, client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    assert signed_in_as(client)
    with app.app_context():
        db.session.execute(update(BrowserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert not signed_in_as(client)


@pytest.mark.parametrize("target, lands", [
    ("/ui/..//x", "/ui/"),
    ("/ui/../../etc/passwd", "/ui/"),
    ("//evil.example/ui/", "/ui/"),
    ("https://evil.example/ui/", "/ui/"),
    ("/ui\\..\\x", "/ui/"),
    ("/uix", "/ui/"),
    ("/ui/./models/housing?sort=-version", "/ui/models/housing?sort=-version"),
])
def test_sign_in_sends_you_on_only_to_a_normalised_dashboard_path(client, target, lands):
    token = csrf_of(client.get("/ui/sign-in"))
    response = client.post("/ui/sign-in", query_string={"next": target}, data={"csrf_token": token, "token": ADMIN_TOKEN})
    assert response.status_code == 302
    assert response.headers["Location"] == lands
