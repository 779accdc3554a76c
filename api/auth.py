"""Bearer-token authentication and role checks for views."""
from collections.abc import Callable
from functools import wraps

from flask import g, request

from api import rate_limits
from api.openapi import NEEDS_TOKEN, READ, document
from api.rights import route_right
from api.settings import settings_of
from registry.access.tokens import METRICS, READ_INPUTS, READ_INPUTS_ROLES, Principal, authenticate
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
            _check_scope(who)
            g.principal = who
            return view(*args, **kwargs)

        return document(wrapped, {"security": NEEDS_TOKEN})

    return decorator


def reads(view):
    """Open to everyone unless the deployment sets REQUIRE_AUTH_FOR_READS; then any valid token."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if settings_of().access.require_auth_for_reads:
            g.principal = read_allowed(request.headers.get("Authorization"),
                                       address=rate_limits.address_of(request.environ), endpoint=request.endpoint,
                                       method=request.method, model=_model())
        return view(*args, **kwargs)

    return document(wrapped, READ)


def read_allowed(header: str | None, *, address: str, endpoint: str | None, method: str,
                 model: str | None) -> Principal:
    """Who sent ``header`` to read or predict where reads need a token (:func:`reader`), holding, when scoped, the
    right the route (``endpoint``, ``method``) needs on ``model`` (the one its URL names, if any)."""
    who = reader(header, address=address)
    if model is not None:
        check_right(who, route_right(endpoint, method), model, "route")
    return who


def scrapes(view):
    """``/metrics``: open unless the deployment sets REQUIRE_AUTH_FOR_READS; then a token of role ``metrics``
    (or admin), since the scrape names every model and what it serves."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if settings_of().access.require_auth_for_reads:
            who = _authenticate(trust_recent=True)
            if not who.may(METRICS):
                raise Forbidden(f"the token {who.name!r} has role {who.role!r}; /metrics names every model and needs "
                                f"a token of role {METRICS!r} or 'admin' where reads need a token")
            g.principal = who
        return view(*args, **kwargs)

    return document(wrapped, READ)


def requires_read_inputs(view):
    """A token with the right READ_INPUTS, even where reads are open: the view shows what callers sent."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        who = _authenticate(trust_recent=True)
        if not who.reads_inputs(_model()):
            raise Forbidden(missing_read_inputs(who))
        g.principal = who
        return view(*args, **kwargs)

    return document(wrapped, {"security": NEEDS_TOKEN})


def sees_inputs() -> bool:
    """Whether this caller may see raw input values: a token with READ_INPUTS, sent even to an open read."""
    who = g.get("principal")
    if who is None and request.headers.get("Authorization"):
        who = g.principal = _authenticate(trust_recent=True)
    return who is not None and who.reads_inputs(_model())


def missing_read_inputs(who: Principal) -> str:
    """Why ``who`` may not read logged inputs, and which tokens may."""
    if who.scopes is not None and who.role in READ_INPUTS_ROLES:
        return f"the token {who.name!r} is scoped: it has no right {READ_INPUTS!r} on the model {_model()!r}"
    roles = " or ".join(repr(role) for role in READ_INPUTS_ROLES)
    return (f"the token {who.name!r} has role {who.role!r}, without the right {READ_INPUTS!r} that logged inputs "
            f"need (they may be personal data): use a token of role {roles}")


def _model() -> str | None:
    """The model the request's URL names, if any."""
    return (request.view_args or {}).get("name")


def _check_scope(who: Principal) -> None:
    """A scoped token must hold the route's right on the model the URL names (api/rights.py)."""
    model = _model()
    if who.scopes is None or model is None:
        return
    check_right(who, route_right(request.endpoint, request.method), model, "route")


def check_right(who: Principal, right: str | None, model: str, door: str) -> None:
    """A scoped ``who`` must hold ``right`` on ``model`` (None: this ``door``, a route or a method, takes no scoped
    token); Forbidden otherwise."""
    if who.scopes is None:
        return
    if right is None:
        raise Forbidden(f"the token {who.name!r} is scoped, and this {door} of the model {model!r} takes no scoped token")
    if not who.has(right, model):
        raise Forbidden(f"the token {who.name!r} is scoped: it has no right {right!r} on the model {model!r}; "
                        "ask an admin for a token whose scopes grant it")


def reader(header: str | None, *, address: str) -> Principal:
    """Who sent the ``Authorization`` value ``header`` to read or predict where reads need a token (a token of role
    metrics may not); a failure is counted under ``address``, 429 past the limit."""
    who = bearer(header, trust_recent=True, address=address)
    if who.role == METRICS:
        raise Forbidden(f"the token {who.name!r} has role {METRICS!r}: it may scrape /metrics, nothing else; "
                        "use a token of another role")
    return who


def bearer(header: str | None, *, trust_recent: bool, address: str | None = None) -> Principal:
    """The principal of ``Authorization: Bearer <token>`` (``header``), or Unauthorized; a failure counted under
    ``address`` (default: this request's), 429 instead past the limit."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <token>'; ask an admin for a token")
    try:
        return authenticate(token.strip(), settings_of().access.admin_token, trust_recent=trust_recent)
    except Unauthorized:
        rate_limits.authentication_failed(address)  # 429 instead, past the limit
        raise


def _authenticate(*, trust_recent: bool) -> Principal:
    return bearer(request.headers.get("Authorization"), trust_recent=trust_recent)
