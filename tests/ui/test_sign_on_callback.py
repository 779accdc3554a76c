"""The sign-in callback refuses an ID token that is not for this sign-in: another issuer, another audience,
another nonce, another key, or expired; a 400 page and no session. A real provider never sends such a
token (tests/e2e/test_dashboard_oidc.py signs in through one), so the test makes them: the provider's
keys and its token endpoint's answer are the test's, everything else (Authlib's checks, the callback,
the session) is the service's own."""
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from registry.access.sign_on import SignOnConfigError

ISSUER = "https://id.example.test"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
GROUPS = {"ml-admins": {"role": "admin"}}


@pytest.fixture
def sso_app(build_app):
    """An app whose provider's discovery document and keys are already known (nothing is fetched)."""
    app = build_app(OIDC_ISSUER=ISSUER, OIDC_CLIENT_ID="registry", OIDC_CLIENT_SECRET="secret",
                    OIDC_GROUPS=json.dumps(GROUPS))
    app.extensions["sign_on"].client.server_metadata.update({
        "issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth", "token_endpoint": f"{ISSUER}/token",
        "userinfo_endpoint": f"{ISSUER}/me", "jwks": {"keys": [KEY.as_dict(private=False)]},
        "id_token_signing_alg_values_supported": ["RS256"], "_loaded_at": time.time(),
    })
    return app


def callback_with(app, monkeypatch, **changes):
    """Start a sign-in, then come back with an ID token for it, ``changes`` applied; the callback's answer
    and whether the browser is signed in afterwards."""
    client = app.test_client()
    started = client.get(changes.pop("start", "/ui/sign-in/oidc"))
    assert started.status_code == 302
    query = parse_qs(urlsplit(started.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "registry", "sub": "alice", "email": "alice@example.com",
              "groups": ["ml-admins"], "nonce": query["nonce"][0], "iat": now, "exp": now + 300}
    key = changes.pop("key", KEY)
    claims.update(changes)
    id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
    monkeypatch.setattr(app.extensions["sign_on"].client, "fetch_access_token",
                        lambda **params: {"access_token": "at", "token_type": "Bearer", "id_token": id_token})
    answer = client.get(f"/ui/sign-in/oidc/callback?code=c&state={query['state'][0]}")
    signed_in = "Signed in as" in client.get("/ui/").get_data(as_text=True)
    return answer, signed_in


def test_a_valid_id_token_signs_the_person_in_and_goes_where_they_were_going(sso_app, monkeypatch):
    answer, signed_in = callback_with(sso_app, monkeypatch, start="/ui/sign-in/oidc?next=/ui/operations")
    assert answer.status_code == 302 and answer.headers["Location"] == "/ui/operations" and signed_in


def test_where_to_go_after_sign_in_is_never_another_site(sso_app, monkeypatch):
    answer, _ = callback_with(sso_app, monkeypatch, start="/ui/sign-in/oidc?next=https://evil.example/ui/")
    assert answer.headers["Location"] == "/ui/"


@pytest.mark.parametrize("changes", [
    {"iss": "https://elsewhere.example.test"},
    {"aud": "another-client"},
    {"nonce": "not-this-sign-ins"},
    {"key": OTHER_KEY},
    {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
], ids=["issuer", "audience", "nonce", "signature", "expired"])
def test_an_id_token_not_for_this_sign_in_is_refused_without_a_session(sso_app, monkeypatch, changes):
    answer, signed_in = callback_with(sso_app, monkeypatch, **changes)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert "the sign-in was refused" in answer.get_data(as_text=True)
    assert not signed_in


def test_without_single_sign_on_its_routes_are_not_found(client):
    assert client.get("/ui/sign-in/oidc").status_code == 404
    assert "Sign in with" not in client.get("/ui/sign-in").get_data(as_text=True)


def test_the_app_refuses_to_start_with_a_wrong_mapping(build_app):
    with pytest.raises(SignOnConfigError, match="not valid JSON"):
        build_app(OIDC_ISSUER=ISSUER, OIDC_CLIENT_ID="registry", OIDC_CLIENT_SECRET="secret", OIDC_GROUPS="{")


def test_the_pages_let_the_sign_out_form_go_on_to_the_providers_origin_only(sso_app, client):
    assert "form-action 'self' https://id.example.test;" in sso_app.test_client().get("/ui/").headers[
        "Content-Security-Policy"]
    assert "form-action 'self';" in client.get("/ui/").headers["Content-Security-Policy"]  # without single sign-on
