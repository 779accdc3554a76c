"""API tokens: created once and shown once, stored hashed, checked in constant time."""
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from registry.db import db, write_transaction
from registry.errors import Conflict, InvalidInput, TokenNotFound, Unauthorized
from registry.names import TOKEN_NAME, check_token_name
from registry.paging import Page, paginate
from registry.tables import ApiToken, utcnow

# admin: everything; ci: upload, promote, roll back, evaluate; reader: read and predict only.
ROLES = ("admin", "ci", "reader")
BOOTSTRAP_ADMIN = "admin"
# last_used_at is a hint for admins, not an audit trail: write it at most this often per token.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name (recorded as the actor of writes) and its role."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        """Whether this principal may do what needs ``role``: admin may do everything, others their own role."""
        return self.role in ("admin", role)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token."""
    return "mr_" + secrets.token_urlsafe(32)


def create_token(name: str, role: str) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the plain token, which is never retrievable again."""
    check_token_name(name)
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}", errors={"role": ["unknown role"]})
    if name == BOOTSTRAP_ADMIN:
        raise Conflict(f"{BOOTSTRAP_ADMIN!r} is the bootstrap admin token's name; choose another")
    token = new_token()
    try:
        with write_transaction():
            row = ApiToken(name=name, role=role, token_hash=hash_token(token))
            db.session.add(row)
    except IntegrityError:
        raise Conflict(f"a token named {name!r} exists; revoke it first or choose another name") from None
    return row, token


def list_tokens() -> list[ApiToken]:
    """Every token, by name."""
    return list(db.session.execute(select(ApiToken).order_by(ApiToken.name)).scalars())


def token_page(page: int, per_page: int) -> Page:
    """One page of the tokens, by name."""
    return paginate(select(ApiToken).order_by(ApiToken.name), page, per_page)


def revoke_token(name: str) -> None:
    """Delete a token; every worker checks the database on each request, so it stops at once."""
    if not TOKEN_NAME.fullmatch(name):
        raise TokenNotFound(f"no token named {name!r}")
    with write_transaction():
        row = db.session.execute(select(ApiToken).where(ApiToken.name == name)).scalar_one_or_none()
        if row is None:
            raise TokenNotFound(f"no token named {name!r}")
        db.session.delete(row)


def authenticate(token: str, bootstrap_admin_token: str | None) -> Principal:
    """The principal a bearer token belongs to, or Unauthorized."""
    if bootstrap_admin_token and hmac.compare_digest(token.encode(), bootstrap_admin_token.encode()):
        return Principal(BOOTSTRAP_ADMIN, "admin")
    digest = hash_token(token)
    row = db.session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalar_one_or_none()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise Unauthorized("the bearer token is not valid (unknown or revoked)")
    principal = Principal(row.name, row.role)
    if row.last_used_at is None or utcnow() - row.last_used_at > LAST_USED_RESOLUTION:
        _touch(row.id)
    return principal


def authenticate_digest(digest: str, bootstrap_admin_token: str | None) -> Principal:
    """The principal of a token known only by its sha256 (what a signed-in browser session keeps)."""
    if bootstrap_admin_token and hmac.compare_digest(digest, hash_token(bootstrap_admin_token)):
        return Principal(BOOTSTRAP_ADMIN, "admin")
    row = db.session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalar_one_or_none()
    if row is None:
        raise Unauthorized("the session's token was revoked; sign in again")
    return Principal(row.name, row.role)


def _touch(token_id: int) -> None:
    """Record use; rare enough (see LAST_USED_RESOLUTION) that it never contends with real writes."""
    with write_transaction():
        db.session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))
