"""Single sign-on end to end (issue 44): a real browser signs in to a real gunicorn through a real,
certified OpenID provider (the npm package oidc-provider under Node.js, `make oidc-provider`), at its own
login and consent pages. alice is in ml-admins (admin), bob in team-a (ci on team-a-* only), carol in a
group the registry maps to nothing. One provider and one registry serve the whole module."""
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect

from bench.harness import server
from bench.harness.models import scaled_sum, upload
from bench.harness.traffic import move
from tests.databases import BACKEND, fresh_database
from tests.e2e.browsers import DESKTOP, browser, shot  # noqa: F401  (browser: a fixture)
from tests.e2e.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("the sign-in through a real provider in a browser is what it tests; a person's session and a policy's "
            "groups are held on both backends by tests/ui/test_signed_in_people.py: the SQLite pass runs it"),
)

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
CLIENT_SECRET = "registry-test-client-secret"
GROUPS = {"ml-admins": {"role": "admin"},
          "team-a": {"role": "ci", "scopes": [{"models": ["team-a-*"], "rights": ["read", "promote"]}]}}
ACCOUNTS = [
    {"sub": "alice", "email": "alice@example.com", "name": "Alice Admin", "groups": ["ml-admins"]},
    {"sub": "bob", "email": "bob@example.com", "name": "Bob Builder", "groups": ["team-a"]},
    {"sub": "carol", "email": "carol@example.com", "name": "Carol Sales", "groups": ["sales"]},
]
TEAM_MODEL, OTHER_MODEL = "team-a-churn", "housing"
CALLBACK = "/ui/sign-in/oidc/callback"


@pytest.fixture(scope="module")
def sso(tmp_path_factory):
    """The registry (2 workers) with single sign-on configured, and the provider it trusts: ``(live, issuer)``."""
    root = tmp_path_factory.mktemp("sso")
    issuer = f"http://127.0.0.1:{server.free_port()}"
    env = {"OIDC_ISSUER": issuer, "OIDC_CLIENT_ID": "registry", "OIDC_CLIENT_SECRET": CLIENT_SECRET,
           "OIDC_GROUPS": json.dumps(GROUPS), "OIDC_PROVIDER_NAME": "Test ID"}
    with fresh_database(root) as database_url, \
            server.running(database_url, root, ADMIN_TOKEN, workers=2, env=env) as (live,), \
            _provider(issuer, live.url, root):
        _models(live)
        yield live, issuer


@pytest.fixture
def page(browser, sso):
    """A fresh browser context (no cookies of either site) that reaches only this machine's loopback."""
    context = browser.new_context(viewport=DESKTOP, base_url=sso[0].url)
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())  # the provider's web fonts
    yield context.new_page()
    context.close()


def sign_in(page: Page, login: str, *, screenshots: str | None = None) -> None:
    """Sign in through the provider's own login and consent pages."""
    page.goto("/ui/sign-in")
    if screenshots:
        shot(page, f"{screenshots}-oidc")
    page.get_by_role("link", name="Sign in with Test ID").click()
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("any password: the development login checks none")
    if screenshots:
        shot(page, f"{screenshots}-oidc-provider-login")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # the provider's consent page


def test_alice_of_ml_admins_signs_in_promotes_and_is_named_in_the_history(page, sso):
    live, _ = sso
    sign_in(page, "alice", screenshots="sign-in")
    expect(page.locator(".who")).to_contain_text("oidc:alice@example.com")
    expect(page.locator(".who")).to_contain_text("admin")
    expect(page.get_by_text("Signed in as Alice Admin (admin).")).to_be_visible()
    shot(page, "signed-in-oidc-admin")

    page.goto(f"/ui/models/{OTHER_MODEL}/versions/2/promote?alias=production")
    page.get_by_label("Reason").fill("alice's call")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Promoted 'production' from version 1 to 2.")).to_be_visible()
    latest = requests.get(f"{live.url}/models/{OTHER_MODEL}/history", headers=live.headers, timeout=10).json()["items"][0]
    assert (latest["actor"], latest["reason"]) == ("oidc:alice@example.com", "alice's call")


def test_bob_of_team_a_sees_and_moves_team_a_models_only(page, sso):
    live, _ = sso
    sign_in(page, "bob")
    expect(page.locator(".who")).to_contain_text("oidc:bob@example.com")
    expect(page.locator(f'tr[data-model="{TEAM_MODEL}"]')).to_be_visible()
    expect(page.locator(f'tr[data-model="{OTHER_MODEL}"]')).to_have_count(0)
    shot(page, "signed-in-oidc-scoped")

    response = page.goto(f"/ui/models/{OTHER_MODEL}/versions/1/promote?alias=production")
    assert response.status == 403
    expect(page.get_by_text(f"no right 'promote' on the model '{OTHER_MODEL}'")).to_be_visible()
    shot(page, "refused-oidc-out-of-scope")

    # team-a-churn's production is protected: roles [admin] and the group team-a move it; bob is in team-a
    page.goto(f"/ui/models/{TEAM_MODEL}/versions/2/promote?alias=production")
    page.get_by_label("Reason").fill("bob's team ships v2")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Promoted 'production' from version 1 to 2.")).to_be_visible()
    aliases = requests.get(f"{live.url}/models/{TEAM_MODEL}/aliases", headers=live.headers, timeout=10).json()
    assert aliases == {"production": 2}


def test_a_ci_token_is_in_no_group_and_the_policy_refuses_it(sso):
    live, _ = sso
    created = requests.post(f"{live.url}/tokens", json={"name": "team-a-ci", "role": "ci"}, headers=live.headers,
                            timeout=10)
    token = {"Authorization": f"Bearer {created.json()['token']}"}
    refused = requests.post(f"{live.url}/models/{TEAM_MODEL}/versions/1/promote", json={}, headers=token, timeout=30)
    assert refused.status_code == 409
    assert [item["rule"] for item in refused.json()["missing"]] == ["movers"]


def test_carol_whose_groups_map_to_nothing_is_refused_with_a_page_and_no_session(page, sso):
    sign_in(page, "carol")
    expect(page.get_by_text("is in sales, and this registry gives no role")).to_be_visible()
    shot(page, "refused-oidc-unmapped-group")
    assert page.locator(".who").inner_text().strip().startswith("Sign in")
    assert page.goto("/ui/models/housing/versions/2/promote").url.split("?")[0].endswith("/ui/sign-in")


def test_sign_out_ends_the_session_server_side_and_at_the_provider(page, sso):
    live, issuer = sso
    sign_in(page, "alice")
    cookie = _session_cookie(page)
    assert _signed_in_as(live, cookie) == "oidc:alice@example.com"

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click()  # RP-initiated logout at the provider
    page.wait_for_url(re.compile(re.escape(live.url) + r"/ui/?$"))
    shot(page, "signed-out-oidc")

    assert _signed_in_as(live, cookie) is None  # the copied cookie no longer signs anyone in
    again = page.context.new_page()
    again.goto("/ui/sign-in")
    again.get_by_role("link", name="Sign in with Test ID").click()
    expect(again.locator('input[name="login"]')).to_be_visible()  # the provider asks again: its session ended too


def test_a_tampered_or_missing_state_is_refused_without_a_session(page, sso):
    live, _ = sso
    authorization = _authorization(page)
    _walk(page, re.sub(r"state=[^&]+", "state=tampered", authorization), "alice")  # the provider sends it back as is
    expect(page.get_by_text("its state matches no sign-in this browser started")).to_be_visible()
    shot(page, "refused-oidc-tampered-state")
    assert _signed_in_as(live, _session_cookie(page)) is None

    missing = page.goto(f"{CALLBACK}?code=anything")
    assert missing.status == 400
    assert _signed_in_as(live, _session_cookie(page)) is None


def test_a_replayed_code_is_refused_in_the_same_browser_and_in_another(page, sso, browser):
    live, _ = sso
    seen = []
    page.on("request", lambda request: seen.append(request.url) if CALLBACK in request.url else None)
    sign_in(page, "bob")
    expect(page.locator(".who")).to_contain_text("oidc:bob@example.com")
    assert len(seen) == 1

    replayed = page.goto(seen[0])  # the same browser: its state was used up
    assert replayed.status == 400
    expect(page.get_by_text("the sign-in was refused")).to_be_visible()

    stranger = browser.new_context(viewport=DESKTOP, base_url=live.url)  # another browser, with the leaked URL
    try:
        stolen = stranger.new_page()
        assert stolen.goto(seen[0]).status == 400
        assert _signed_in_as(live, _session_cookie(stolen)) is None
    finally:
        stranger.close()


def test_a_code_returned_with_another_sign_ins_state_fails_its_pkce_check(page, sso):
    """Two sign-ins started in one browser: the provider answers the first (its PKCE challenge and nonce)
    with the second's state, so the registry trades the code with the second's verifier: refused."""
    live, _ = sso
    first, second = _authorization(page), _authorization(page)
    other_state = parse_qs(urlsplit(second).query)["state"][0]
    _walk(page, re.sub(r"state=[^&]+", f"state={other_state}", first), "alice")
    expect(page.get_by_text("the sign-in was refused")).to_be_visible()
    shot(page, "refused-oidc-other-sign-ins-state")
    assert page.url.startswith(live.url + CALLBACK)
    assert _signed_in_as(live, _session_cookie(page)) is None


def _authorization(page: Page) -> str:
    """Start a sign-in at the registry (its state, nonce and verifier go into this browser's cookie) and
    return the provider's authorization URL it redirects to."""
    response = page.request.get("/ui/sign-in/oidc", max_redirects=0)
    assert response.status == 302
    return response.headers["location"]


def _walk(page: Page, authorization: str, login: str) -> None:
    """Through the provider's login and consent pages for ``authorization``, back to the registry."""
    page.goto(authorization)
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("x")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(re.escape(CALLBACK)))


def _session_cookie(page: Page) -> str | None:
    return next((c["value"] for c in page.context.cookies() if c["name"] == "session" and c["domain"] == "127.0.0.1"
                 and c.get("path", "/") == "/"), None)


def _signed_in_as(live, cookie: str | None) -> str | None:
    """Who a request bearing only this session cookie is signed in as (None: nobody)."""
    if cookie is None:
        return None
    html = requests.get(f"{live.url}/ui/", cookies={"session": cookie}, timeout=10).text
    found = re.search(r"Signed in as <strong>([^<]+)</strong>", html)
    return found.group(1) if found else None


def _models(live) -> None:
    """team-a-churn (production protected: admin and team-a move it) and housing, each v1 in production."""
    for name in (TEAM_MODEL, OTHER_MODEL):
        for factor in (1.0, 2.0):
            response = upload(live, name, scaled_sum(factor), metadata={"metrics": {"r2": factor / 4}})
            assert response.status_code == 201, response.text
        move(live, "promote", name, 1)
    policy = requests.put(f"{live.url}/models/{TEAM_MODEL}/aliases/production/policy", headers=live.headers,
                          json={"movers": {"roles": ["admin"], "groups": ["team-a"]}}, timeout=10)
    assert policy.status_code == 200, policy.text


class _provider:
    """The provider under Node.js for the module: the registry as its client, the three accounts."""

    def __init__(self, issuer: str, registry_url: str, log_dir: Path):
        node = shutil.which("node")
        if node is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").exists():
            pytest.fail("the single sign-on tests need Node.js and oidc-provider: make oidc-provider")
        client = {"client_id": "registry", "client_secret": CLIENT_SECRET, "grant_types": ["authorization_code"],
                  "response_types": ["code"], "redirect_uris": [registry_url + CALLBACK],
                  "post_logout_redirect_uris": [registry_url + "/ui/"]}
        settings = {"issuer": issuer, "port": int(urlsplit(issuer).port), "clients": [client], "accounts": ACCOUNTS}
        self.args, self.log_path = [node, str(PROVIDER_DIR / "provider.mjs"), json.dumps(settings)], log_dir / "provider.log"
        self.issuer = issuer

    def __enter__(self):
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.args, cwd=PROVIDER_DIR, stdout=self.log, stderr=subprocess.STDOUT,
                                        preexec_fn=server.die_with_parent)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(self.issuer + "/.well-known/openid-configuration", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
            if self.process.poll() is not None:
                break
        self.__exit__()
        pytest.fail(f"the OpenID provider did not start:\n{self.log_path.read_text()[-3000:]}")

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
