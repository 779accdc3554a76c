"""Dashboard sessions, kept server-side so that they end: signing out deletes one, revoking its token
ends it at once, and none outlives its lifetime. The browser's cookie holds only a random id."""
import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select

from registry.access.tokens import Principal, authenticate, authenticate_digest, hash_token
from registry.db import db, write_transaction
from registry.errors import Forbidden, Unauthorized
from registry.tables import BrowserSession, utcnow


def start_session(token: str, *, bootstrap_admin_token: str | None, lifetime: timedelta) -> tuple[str, Principal]:
    """Check ``token`` and open a session for it: its id (for the cookie) and who signed in.

    Expired sessions are pruned here, so the table holds the open ones only.
    """
    who = authenticate(token, bootstrap_admin_token)
    if who.scopes is not None:  # the dashboard's actions check roles, not a token's models
        raise Forbidden(f"the token {who.name!r} is scoped to some models, and the dashboard takes unscoped tokens "
                        "only: use it with the API, or sign in with an unscoped token")
    session_id, now = secrets.token_urlsafe(32), utcnow()
    with write_transaction():
        db.session.execute(delete(BrowserSession).where(BrowserSession.expires_at <= now))
        db.session.add(BrowserSession(
            id_hash=_digest(session_id), token_hash=hash_token(token), created_at=now, expires_at=now + lifetime,
        ))
    return session_id, who


def session_principal(session_id: str, *, bootstrap_admin_token: str | None) -> Principal | None:
    """Who the open session ``session_id`` belongs to; None once it ended, expired or its token was revoked."""
    row = db.session.execute(
        select(BrowserSession).where(BrowserSession.id_hash == _digest(session_id), BrowserSession.expires_at > utcnow())
    ).scalar_one_or_none()
    if row is None:
        return None
    try:
        return authenticate_digest(row.token_hash, bootstrap_admin_token)
    except Unauthorized:
        return None


def end_session(session_id: str) -> None:
    """End the session: its cookie, wherever a copy of it went, signs in no more."""
    with write_transaction():
        db.session.execute(delete(BrowserSession).where(BrowserSession.id_hash == _digest(session_id)))


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
