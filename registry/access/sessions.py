"""Dashboard sessions, kept server-side so that they end: signing out deletes one, revoking its token
ends it at once, and none outlives its lifetime. The browser's cookie holds only a random id. A session
belongs to a token, or to a person signed in through single sign-on (registry/access/sign_on.py)."""
import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select

from registry.access import scopes as scoping
from registry.access.tokens import METRICS, Principal, authenticate, authenticate_digest, hash_token
from registry.db import db, write_transaction
from registry.errors import Forbidden, Unauthorized
from registry.tables import BrowserSession, utcnow


def start_session(token: str, *, bootstrap_admin_token: str | None, lifetime: timedelta) -> tuple[str, Principal]:
    """Check ``token`` and open a session for it: its id (for the cookie) and who signed in.

    Expired sessions are pruned here, so the table holds the open ones only.
    """
    who = authenticate(token, bootstrap_admin_token)
    if who.scopes is not None:  # scoped tokens are machines'; people with scopes sign in through single sign-on
        raise Forbidden(f"the token {who.name!r} is scoped to some models, and the dashboard takes unscoped tokens "
                        "only: use it with the API, or sign in with an unscoped token")
    if who.role == METRICS:
        raise Forbidden(f"the token {who.name!r} has role {METRICS!r}: it may scrape /metrics, nothing else; "
                        "sign in with a token of another role")
    return _open(lifetime, token_hash=hash_token(token)), who


def start_person_session(who: Principal, *, lifetime: timedelta, sub: str, email: str | None,
                         id_token: str | None = None) -> str:
    """Open a session for a person signed in through single sign-on, with what their groups gave them
    (``who``); its id, for the cookie. ``id_token`` is kept for signing out at the provider too."""
    person = {"name": who.name, "role": who.role, "scopes": scoping.stored(who.scopes), "groups": list(who.groups),
              "sub": sub, "email": email, "id_token": id_token}
    return _open(lifetime, person=person)


def session_id_token(session_id: str) -> str | None:
    """The ID token the provider gave the person of this session (for ending their session there too)."""
    row = _open_row(session_id)
    return (row.person or {}).get("id_token") if row is not None else None


def _open(lifetime: timedelta, **holder) -> str:
    """A new session of a token (``token_hash``) or a person (``person``); expired ones are pruned here."""
    session_id, now = secrets.token_urlsafe(32), utcnow()
    with write_transaction():
        db.session.execute(delete(BrowserSession).where(BrowserSession.expires_at <= now))
        db.session.add(BrowserSession(id_hash=_digest(session_id), created_at=now, expires_at=now + lifetime, **holder))
    return session_id


def session_principal(session_id: str, *, bootstrap_admin_token: str | None) -> Principal | None:
    """Who the open session ``session_id`` belongs to; None once it ended, expired or its token was revoked."""
    row = _open_row(session_id)
    if row is None:
        return None
    if row.token_hash is None:
        person = row.person
        return Principal(person["name"], person["role"], scoping.loaded(person["scopes"]), tuple(person["groups"]))
    try:
        return authenticate_digest(row.token_hash, bootstrap_admin_token)
    except Unauthorized:
        return None


def end_session(session_id: str) -> None:
    """End the session: its cookie, wherever a copy of it went, signs in no more."""
    with write_transaction():
        db.session.execute(delete(BrowserSession).where(BrowserSession.id_hash == _digest(session_id)))


def _open_row(session_id: str) -> BrowserSession | None:
    return db.session.execute(
        select(BrowserSession).where(BrowserSession.id_hash == _digest(session_id), BrowserSession.expires_at > utcnow())
    ).scalar_one_or_none()


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
