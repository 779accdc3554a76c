"""Single sign-on for the dashboard: OpenID Connect's authorization code flow with PKCE, through Authlib.

Authlib keeps the request's state, nonce and PKCE verifier in the (signed) cookie between the redirect
and the callback, checks the state, trades the code for tokens and validates the ID token against the
provider's keys (issuer, audience, nonce, signature; all from its discovery document). What the person
may do comes from their groups (``OIDC_GROUPS``, registry/access/sign_on.py); the dashboard then keeps a
server-side session for them, as for a token, so signing out ends it everywhere. Authlib (and requests,
which it brings) is imported only where single sign-on is configured: a worker that serves models
without it never pays for their import.
"""
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import Flask, current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.exceptions import NotFound

from api import rate_limits
from api.settings import settings_of
from api.ui.blueprint import bp
from api.ui.session import safe_next, sign_in_person
from registry.access.sign_on import GroupRule, check_settings, person_of, principal_of

NEXT_KEY = "sign_on_next"


@dataclass(frozen=True)
class SignOn:
    """The configured provider: Authlib's client for it, the group rules and the group claim's name."""

    client: object
    rules: tuple[GroupRule, ...]
    group_claim: str
    provider_name: str


def init_sign_on(app: Flask) -> None:
    """Register the provider when OIDC_ISSUER is set; its settings are checked here, so a wrong one stops
    the start (SignOnConfigError naming it). The discovery document is read on the first sign-in."""
    given = settings_of(app).sign_on
    rules = check_settings(given)
    if rules is None:
        return
    from authlib.integrations.flask_client import OAuth  # only where configured: it brings requests along

    oauth = OAuth(app)
    client = oauth.register(
        "oidc", client_id=given.client_id, client_secret=given.client_secret,
        server_metadata_url=given.issuer + "/.well-known/openid-configuration",
        client_kwargs={"scope": given.scopes, "code_challenge_method": "S256", "timeout": 10},
    )
    app.extensions["sign_on"] = SignOn(client, rules, given.group_claim, given.provider_name)


def provider_name() -> str | None:
    """The provider's name for the sign-in page's button (None: single sign-on is off)."""
    sign_on = current_app.extensions.get("sign_on")
    return sign_on.provider_name if sign_on is not None else None


@bp.route("/sign-in/oidc")
def sign_on_start():
    """Send the browser to the provider's sign-in, with a fresh state, nonce and PKCE challenge."""
    import requests
    from authlib.common.errors import AuthlibBaseError

    sign_on = _configured()
    session[NEXT_KEY] = request.args.get("next") or ""
    try:
        return sign_on.client.authorize_redirect(url_for("ui.sign_on_callback", _external=True))
    except (requests.RequestException, AuthlibBaseError, ValueError) as exc:
        return _refused(502, "Provider unavailable", f"the sign-in provider did not answer as expected: {exc}")


@bp.route("/sign-in/oidc/callback")
def sign_on_callback():
    """The provider's answer: check it, find what the person's groups give, and open their session."""
    import requests
    from authlib.common.errors import AuthlibBaseError
    from joserfc.errors import JoseError


    sign_on = _configured()
    try:
        token = sign_on.client.authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        if not claims:
            return _refused(400, "Sign-in refused", "the sign-in was refused: the provider sent no ID token")
        if sign_on.group_claim not in claims:  # many providers put groups in the userinfo only
            extra = sign_on.client.userinfo(token=token)
            if extra.get("sub") == claims["sub"]:
                claims = {**extra, **claims}
    except (AuthlibBaseError, JoseError) as exc:
        rate_limits.authentication_failed()  # 429 instead, past AUTH_FAILURES_PER_MINUTE
        return _refused(400, "Sign-in refused", f"the sign-in was refused: {_said(exc)}; go back to the sign-in "
                                                "page and start again")
    except requests.RequestException as exc:
        return _refused(502, "Provider unavailable", f"the sign-in provider did not answer: {exc}")
    person = person_of(claims, sign_on.group_claim)
    who = principal_of(person, sign_on.rules)  # Forbidden: no group of theirs is mapped
    target = safe_next(session.pop(NEXT_KEY, None))
    sign_in_person(who, sub=person.sub, email=person.email, id_token=token.get("id_token"))
    flash(f"Signed in as {person.name or person.email or person.sub} ({who.role}"
          + (", scoped" if who.scopes is not None else "") + ").", "ok")
    return redirect(target)


def provider_sign_out(id_token: str | None):
    """A redirect to the provider's end of session (RP-initiated logout) when it offers one, else None."""
    sign_on = current_app.extensions.get("sign_on")
    if sign_on is None or id_token is None:
        return None
    import requests

    try:
        endpoint = sign_on.client.load_server_metadata().get("end_session_endpoint")
    except (requests.RequestException, ValueError):
        return None
    if not endpoint:
        return None
    query = urlencode({"id_token_hint": id_token, "client_id": sign_on.client.client_id,
                       "post_logout_redirect_uri": url_for("ui.models", _external=True)})
    return redirect(f"{endpoint}?{query}")


def _configured() -> SignOn:
    sign_on = current_app.extensions.get("sign_on")
    if sign_on is None:
        raise NotFound("single sign-on is not configured here: sign in with an API token")
    return sign_on


def _refused(status: int, title: str, detail: str):
    """The dashboard's refusal page, with what went wrong (no session was opened)."""
    return render_template("ui/refused.html", title=title, status=status, detail=detail), status


def _said(exc: Exception) -> str:
    """What went wrong, in the words of the provider or of the check that failed."""
    from authlib.integrations.base_client.errors import MismatchingStateError

    if isinstance(exc, MismatchingStateError):
        return ("its state matches no sign-in this browser started (changed, used already, or begun in another "
                "browser)")
    described = getattr(exc, "description", None) or getattr(exc, "error", None) or str(exc)
    return (str(described) or type(exc).__name__).rstrip(".")
