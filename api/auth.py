"""Bearer-token authentication and role checks for views."""
from collections.abc import Callable
from functools import wraps

from flask import current_app, g, request

from api import rate_limits
from api.openapi import NEEDS_TOKEN, TOKEN_IF_CONFIGURED, document
from registry.access.tokens import READ_INPUTS, READ_INPUTS_ROLES, Principal, authenticate
from registry.errors import Forbidden, Unauthorized

ANONYMOUS = Principal("anonymous", "reader")


def principal() -> Principal:
    """Who made this request (set by the role decorators)."""
    return g.get("principal", ANONYMOUS)


def requires(*roles: str) -> Callable:
    """Allow the view to tokens of any of ``roles`` and to admins."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            who = _authenticate(trust_recent=False)
            if not any(who.may(role) for role in roles):
                named = [repr(role) for role in roles if role != "admin"] + ["'admin'"]
                needs = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} or {named[-1]}"
                raise Forbidden(f"the token {who.name!r} has role {who.role!r}; this needs {needs}")
            g.principal = who
            return view(*args, **kwargs)

        return document(wrapped, {"security": NEEDS_TOKEN})

    return decorator


def reads(view):
    """Open to everyone unless the deployment sets REQUIRE_AUTH_FOR_READS; then any valid token."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if current_app.config["REQUIRE_AUTH_FOR_READS"]:
            g.principal = _authenticate(trust_recent=True)
        return view(*args, **kwargs)

    return document(wrapped, {"security": TOKEN_IF_CONFIGURED})


def requires_read_inputs(view):
    """A token with the right READ_INPUTS, even where reads are open: the view shows what callers sent."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        who = _authenticate(trust_recent=True)
        if not who.reads_inputs():
            raise Forbidden(missing_read_inputs(who))
        g.principal = who
        return view(*args, **kwargs)

    return document(wrapped, {"security": NEEDS_TOKEN})


def sees_inputs() -> bool:
    """Whether this caller may see raw input values: a token with READ_INPUTS, sent even to an open read."""
    who = g.get("principal")
    if who is None and request.headers.get("Authorization"):
        who = g.principal = _authenticate(trust_recent=True)
    return who is not None and who.reads_inputs()


def missing_read_inputs(who: Principal) -> str:
    """Why ``who`` may not read logged inputs, and which tokens may."""
    roles = " or ".join(repr(role) for role in READ_INPUTS_ROLES)
    return (f"the token {who.name!r} has role {who.role!r}, without the right {READ_INPUTS!r} that logged inputs "
            f"need (they may be personal data): use a token of role {roles}")


def _authenticate(*, trust_recent: bool) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <token>'; ask an admin for a token")
    try:
        return authenticate(token.strip(), current_app.config["ADMIN_TOKEN"], trust_recent=trust_recent)
    except Unauthorized:
        rate_limits.authentication_failed()  # 429 instead, past the limit
        raise
