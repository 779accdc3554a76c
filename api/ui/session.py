"""Who is signed in to the dashboard: a token checked once, then a session kept server-side.

The cookie keeps only the session's random id, and every request looks the session up again, so
signing out, revoking the token or reaching ``SESSION_LIFETIME_HOURS`` ends it at once, on every
worker, for every copy of the cookie.
"""
import posixpath
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

from flask import flash, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from api.settings import settings_of
from registry.access.scopes import PROMOTE, READ
from registry.access.sessions import (
    end_session, session_id_token, session_principal, start_person_session, start_session,
)
from registry.access.sign_on import PREFIX as PERSON
from registry.access.tokens import Principal
from registry.errors import Forbidden

SESSION_KEY = "session_id"


class BrowserSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, marked ``Secure`` whenever the request itself came over HTTPS."""

    def open_session(self, app, request):
        """An empty session, without building the cookie's signer, for a request that sends no cookie
        (every API call); else Flask's."""
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app) -> bool:
        """Secure behind HTTPS (or when the deployment forces it)."""
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def sign_in(token: str) -> Principal:
    """Check ``token`` and start a session for it; raises Unauthorized for a bad token."""
    access = settings_of().access
    session_id, who = start_session(
        token, bootstrap_admin_token=access.admin_token, lifetime=timedelta(seconds=access.session_lifetime_seconds)
    )
    session.clear()
    session[SESSION_KEY] = session_id
    return who


def sign_in_person(who: Principal, *, sub: str, email: str | None, id_token: str | None) -> None:
    """Start a session for a person signed in through single sign-on (``who``: what their groups give)."""
    session_id = start_person_session(who, lifetime=timedelta(seconds=settings_of().access.session_lifetime_seconds),
                                      sub=sub, email=email, id_token=id_token)
    session.clear()
    session[SESSION_KEY] = session_id


def sign_out() -> None:
    """End the session server-side, then forget its cookie."""
    session_id = session.get(SESSION_KEY)
    if isinstance(session_id, str):
        end_session(session_id)
    session.clear()


def person_id_token() -> str | None:
    """The ID token of the person signed in through single sign-on (None for a token's session)."""
    session_id = session.get(SESSION_KEY)
    return session_id_token(session_id) if isinstance(session_id, str) else None


def signed_in() -> Principal | None:
    """The principal of this browser session, or None (also when its token was revoked)."""
    if "ui_principal" not in g:
        g.ui_principal = _principal_from_cookie()
    return g.ui_principal


def may(role: str) -> bool:
    """Whether the signed-in token may act with ``role`` (admin may do everything)."""
    who = signed_in()
    return who is not None and who.may(role)


def page(view: Callable) -> Callable:
    """A read page: open, unless the deployment sets REQUIRE_AUTH_FOR_READS; a model's page only to a
    signed-in person whose scopes let them read it, when they are scoped."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if settings_of().access.require_auth_for_reads and signed_in() is None:
            return redirect(url_for("ui.sign_in", next=request.full_path))
        _check_scope(READ, kwargs.get("name"))
        return view(*args, **kwargs)

    return wrapped


def action(role: str, right: str = PROMOTE) -> Callable:
    """A view that changes something: needs a signed-in token with ``role`` (or admin) and, for a person
    whose groups give scopes, ``right`` on the model the URL names (as the API asks of a scoped token)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if signed_in() is None:
                flash("Sign in with a token to do this.", "error")
                return redirect(url_for("ui.sign_in", next=request.full_path))
            if not may(role):
                needs = "admin" if role == "admin" else f"{role} or admin"
                whose = "You have" if signed_in().name.startswith(PERSON) else "Your token has"
                flash(f"{whose} the role {signed_in().role}; this needs {needs}.", "error")
                return redirect(request.referrer or url_for("ui.models"))
            _check_scope(right, kwargs.get("name"))
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _check_scope(right: str, model: str | None) -> None:
    """Forbidden (a 403 page) when the signed-in principal is scoped and lacks ``right`` on ``model``."""
    who = signed_in()
    if model is None or who is None or who.scopes is None or who.has(right, model):
        return
    raise Forbidden(f"{who.name} has no right {right!r} on the model {model!r}: the groups you are in "
                    "give you other models only")


def _principal_from_cookie() -> Principal | None:
    session_id = session.get(SESSION_KEY)
    if not isinstance(session_id, str):
        return None
    who = session_principal(session_id, bootstrap_admin_token=settings_of().access.admin_token)
    if who is None:
        session.clear()
    return who


def safe_next(target: str | None) -> str:
    """Only a path inside the dashboard, as normalised, never another site (no open redirect)."""
    if target and "\\" not in target:
        parts = urlsplit(target)
        path = posixpath.normpath(parts.path) if parts.path else ""
        if not (parts.scheme or parts.netloc) and (path == "/ui" or path.startswith("/ui/")):
            return path + (f"?{parts.query}" if parts.query else "")
    return url_for("ui.models")
