"""API tokens: created once and shown once, stored hashed, checked in constant time."""
import hashlib
import hmac
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from registry.access import scopes as scoping
from registry import entries
from registry.access.scopes import READ_INPUTS, Grant
from registry.db import db, write_transaction
from registry.errors import Conflict, InvalidInput, TokenNotFound, Unauthorized
from registry.governance.requests import withdraw_requests_of
from registry.names import TOKEN_NAME, check_token_name
from registry.paging import Page, paginate
from registry.tables import ApiToken, utcnow

# admin: everything; ci: upload, promote, roll back, evaluate; reader: read and predict only;
# feedback: read, predict and send labels (the application that learns the truth); analyst: read,
# predict and read logged inputs (READ_INPUTS); metrics: scrape /metrics where reads need a token, and
# nothing else (it holds no right on any model, and the scrape names every model, so it is never scoped).
ROLES = ("admin", "ci", "reader", "feedback", "analyst", "metrics")
METRICS = "metrics"
# The right to read what callers sent (the prediction log, its CSV, the values of categorical drift
# bins): inputs may be personal data, so only these roles have it.
READ_INPUTS_ROLES = ("admin", "analyst")
BOOTSTRAP_ADMIN = "admin"
SHELL = "flask tokens"  # the actor of a token change made on the server's shell, where no token speaks
# last_used_at is a hint for admins, not an audit trail: write it at most this often per token.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_OWNER = 255  # characters of a token's owner (an e-mail address fits)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name (recorded as the actor of writes), its role, for a scoped token
    the models it may act on (None: every model), and its owner; for a person signed in through single
    sign-on, ``oidc:<email or sub>`` (their own owner), the role and scopes their groups give, and those groups."""

    name: str
    role: str
    scopes: tuple[Grant, ...] | None = None
    groups: tuple[str, ...] = ()  # a person signed in through single sign-on: their provider's groups (never a token's)
    owner: str | None = None  # a token's: the person it belongs to (None: its name is the person, as a signed-in one's)

    @property
    def person(self) -> str:
        """Who acts, as approvals count them: a token's owner, or the name of a person (or the bootstrap admin)."""
        return self.owner if self.owner is not None else self.name

    def may(self, role: str) -> bool:
        """Whether this principal may do what needs ``role``: admin may do everything, others their own role."""
        return self.role in ("admin", role)

    def has(self, right: str, model: str) -> bool:
        """Whether this principal holds ``right`` on the model named ``model``."""
        return right in scoping.rights_of(self.role, self.scopes, model)

    def reads_inputs(self, model: str | None = None) -> bool:
        """Whether this principal has the right READ_INPUTS (logged inputs and raw categorical values),
        on ``model`` (a scoped token only on the models its grants name)."""
        if self.scopes is not None:
            return model is not None and self.has(READ_INPUTS, model)
        return self.role in READ_INPUTS_ROLES


class VerifiedTokens:
    """Tokens this process verified lately, so that not every request asks the database.

    A token verified less than ``fresh_seconds`` ago is trusted as it is: revoking a token takes
    effect within that bound on every worker (at once on the one that revoked it). While the database
    does not answer, a token verified less than ``outage_seconds`` ago still works, since nobody can
    revoke one meanwhile: predictions on loaded models go on through an outage.
    """

    def __init__(self, fresh_seconds: float = 5.0, outage_seconds: float = 900.0, *, most: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.fresh_seconds, self.outage_seconds, self._most, self._clock = fresh_seconds, outage_seconds, most, clock
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def fresh(self, digest: str) -> Principal | None:
        """The principal of a token verified within ``fresh_seconds``."""
        return self._within(digest, self.fresh_seconds)

    def during_outage(self, digest: str) -> Principal | None:
        """The principal of a token verified within ``outage_seconds`` (the database does not answer)."""
        return self._within(digest, self.outage_seconds)

    def remember(self, digest: str, principal: Principal) -> None:
        """The database just said ``digest`` is ``principal``."""
        with self._lock:
            if len(self._verified) >= self._most:
                self._verified.clear()  # far more tokens than any deployment has: start over
            self._verified[digest] = (principal, self._clock())

    def forget(self, digest: str) -> None:
        """The token is unknown or revoked."""
        with self._lock:
            self._verified.pop(digest, None)

    def _within(self, digest: str, seconds: float) -> Principal | None:
        with self._lock:
            known = self._verified.get(digest)
        if known is None or self._clock() - known[1] >= seconds:
            return None
        return known[0]


VERIFIED = VerifiedTokens()


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token."""
    return "mr_" + secrets.token_urlsafe(32)


def create_token(name: str, role: str, scopes: list[dict] | None = None, *, actor: str = SHELL,
                 owner: str | None = None, reason: str = "") -> tuple[ApiToken, str]:
    """Create a token of the person ``owner`` (None: its own name), unscoped or with ``scopes``
    (``[{"models": [...], "rights": [...]}]``, see :mod:`registry.access.scopes`), and record it in the
    ledger's chain as ``actor``'s, with ``reason`` (its name, role, scopes and owner: who may act on what, for
    whom); returns the row and the plain token, never retrievable again."""
    check_token_name(name)
    owner = checked_owner(owner if owner is not None else name)
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}", errors={"role": ["unknown role"]})
    grants = scoping.checked_scopes(role, scopes)
    if name == BOOTSTRAP_ADMIN:
        raise Conflict(f"{BOOTSTRAP_ADMIN!r} is the bootstrap admin token's name; choose another")
    token = new_token()
    try:
        with write_transaction():
            row = ApiToken(name=name, role=role, owner=owner, token_hash=hash_token(token), scopes=scoping.stored(grants))
            db.session.add(row)
            db.session.flush()  # the name is free: only then is the change recorded
            entries.record("token_create", actor=actor, reason=reason,
                           details={"token": name, "role": role, "scopes": row.scopes, "owner": owner})
    except IntegrityError:
        raise Conflict(f"a token named {name!r} exists; revoke it first or choose another name") from None
    return row, token


def checked_owner(owner: str) -> str:
    """``owner`` if it names a person (1 to 255 characters, something visible, no control characters)."""
    if not owner.strip() or len(owner) > MAX_OWNER or any(unicodedata.category(char) == "Cc" for char in owner):
        raise InvalidInput(f"owner must name the person the token belongs to (an e-mail or a name, 1 to {MAX_OWNER} "
                           "characters, no control characters)", errors={"owner": ["not a person's name"]})
    return owner


def list_tokens() -> list[ApiToken]:
    """Every token, by name."""
    return list(db.session.execute(select(ApiToken).order_by(ApiToken.name)).scalars())


def token_page(page: int, per_page: int) -> Page:
    """One page of the tokens, by name."""
    return paginate(select(ApiToken).order_by(ApiToken.name), page, per_page)


def revoke_token(name: str, *, actor: str = SHELL, reason: str = "") -> None:
    """Delete a token, recorded in the ledger as ``actor``'s, with ``reason``: it stops at once on this worker, and
    within ``VERIFIED.fresh_seconds`` on every other. The approval requests it opened and that are still open are
    withdrawn in the same transaction (an approval would otherwise still move an alias for it)."""
    if not TOKEN_NAME.fullmatch(name):
        raise TokenNotFound(f"no token named {name!r}")
    with write_transaction():
        row = db.session.execute(select(ApiToken).where(ApiToken.name == name)).scalar_one_or_none()
        if row is None:
            raise TokenNotFound(f"no token named {name!r}")
        db.session.delete(row)
        withdraw_requests_of(name, actor=actor)
        entries.record("token_revoke", actor=actor, reason=reason,
                       details={"token": name, "role": row.role, "scopes": row.scopes, "owner": row.owner})
    VERIFIED.forget(row.token_hash)


def authenticate(token: str, bootstrap_admin_token: str | None, *, trust_recent: bool = False) -> Principal:
    """The principal a bearer token belongs to, or Unauthorized.

    ``trust_recent`` (reads and predictions) accepts what this process verified lately, and through a
    database outage (see :class:`VerifiedTokens`); without it (writes, which need the database anyway)
    the database is asked every time, so a revoked token stops writing at once on every worker.
    """
    if bootstrap_admin_token and hmac.compare_digest(token.encode(), bootstrap_admin_token.encode()):
        return Principal(BOOTSTRAP_ADMIN, "admin")
    digest = hash_token(token)
    principal = VERIFIED.fresh(digest) if trust_recent else None
    if principal is not None:
        return principal
    try:
        row = db.session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalar_one_or_none()
    except OperationalError:
        principal = VERIFIED.during_outage(digest) if trust_recent else None
        if principal is None:
            raise
        db.session.rollback()
        return principal
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        VERIFIED.forget(digest)
        raise Unauthorized("the bearer token is not valid (unknown or revoked)")
    principal = Principal(row.name, row.role, scoping.loaded(row.scopes), owner=row.owner)
    VERIFIED.remember(digest, principal)
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
    return Principal(row.name, row.role, scoping.loaded(row.scopes), owner=row.owner)


def _touch(token_id: int) -> None:
    """Record use; rare enough (see LAST_USED_RESOLUTION) that it never contends with real writes."""
    with write_transaction():
        db.session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))
