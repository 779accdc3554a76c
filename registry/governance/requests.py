"""Requests to move a protected alias, as records: finding them, who may approve them, their expiry, and
their withdrawal when their requester's token is revoked."""
from sqlalchemy import select

from registry.db import db
from registry.errors import Conflict, Forbidden, RequestNotFound
from registry.governance import entries
from registry.governance.standing import counted
from registry.governance.tables import ApprovalRequest
from registry.lookups import find_alias
from registry.tables import ApiToken, RegisteredModel, utcnow

OPEN, DONE, REJECTED, WITHDRAWN, EXPIRED = "open", "done", "rejected", "withdrawn", "expired"


def find_request(model: RegisteredModel, alias: str, request_id: int) -> ApprovalRequest:
    """The request ``request_id`` to move ``alias`` of ``model``; 404 when there is none."""
    request = db.session.get(ApprovalRequest, request_id)
    if request is None or request.model_id != model.id or request.alias != alias:
        raise RequestNotFound(f"alias {alias!r} of {model.name!r} has no approval request {request_id}")
    return request


def open_request(model: RegisteredModel, alias: str, request_id: int) -> ApprovalRequest:
    """The request, if it is still open and not past its expiry; else Conflict saying what it is."""
    request = find_request(model, alias, request_id)
    if request.state == OPEN and request.expires_at <= utcnow():
        raise Conflict(f"request {request_id} expired at {request.expires_at.isoformat()}; open a new one")
    if request.state != OPEN:
        raise Conflict(f"request {request_id} is {request.state}; only an open request can be approved or rejected")
    return request


def check_approver(request: ApprovalRequest, approver: str, owner: str) -> None:
    """Forbidden unless ``approver`` (a token's name, or a person's) and ``owner`` (the person it belongs to)
    are neither the requester nor the version's uploader, by name or by owner; Conflict when that person
    approved this request already, with any of their tokens, and their approval still counts (one set aside by a
    policy change may be given again). Approvals count people, not tokens."""
    if approver == request.requested_by:
        raise Forbidden(f"{approver!r} opened request {request.id} and cannot approve it; another person must")
    if owner == request.requester_owner:
        raise Forbidden(f"{approver!r} belongs to {owner!r}, who opened request {request.id} (as "
                        f"{request.requested_by!r}) and cannot approve it; another person must")
    uploader = request.version.created_by
    if approver == uploader or owner == owner_of(uploader):
        whom = "" if approver == uploader else f" (as {uploader!r}; {approver!r} belongs to {owner!r} too)"
        raise Forbidden(f"{approver!r} uploaded version {request.number}{whom} and cannot approve its promotion; "
                        "another person must")
    standing = counted(request.model, request) if request.approvals else []  # no query when none was given
    given = next((given for given in standing if given.owner == owner or given.approver == approver), None)
    if given is not None:
        raise Conflict(f"{owner!r} approved request {request.id} already (as {given.approver!r}); it needs approvals "
                       "from other people")


def owner_of(name: str) -> str:
    """The person a token belongs to; a name that is no token's (a signed-in person, the bootstrap admin, a
    revoked token) is its own."""
    owner = db.session.execute(select(ApiToken.owner).where(ApiToken.name == name)).scalar_one_or_none()
    return owner if owner is not None else name


def expire_due(model: RegisteredModel) -> int:
    """Close the model's open requests past their expiry, recorded (in the caller's write transaction); how many."""
    due = db.session.execute(
        select(ApprovalRequest).where(ApprovalRequest.model_id == model.id, ApprovalRequest.state == OPEN,
                                      ApprovalRequest.expires_at <= utcnow())
    ).scalars().all()
    for request in due:
        close(request, EXPIRED, actor="registry", reason=f"not approved by {request.expires_at.isoformat()}")
        entries.append(model, request.alias, "request_expire", actor="registry", reason=request.close_reason,
                       served=served_number(model, request.alias), version=request.number,
                       details={"request_id": request.id})
    return len(due)


def withdraw_requests_of(requester: str, *, actor: str) -> int:
    """End every open request ``requester`` (a token's name) asked for, as withdrawn, each recorded in its
    alias's history and announced (in the caller's write transaction: the token's revocation); how many.

    A request moves the alias for its requester when approved, so it cannot outlive the token that asked."""
    asked = db.session.execute(
        select(ApprovalRequest).where(ApprovalRequest.requested_by == requester, ApprovalRequest.state == OPEN)
        .order_by(ApprovalRequest.id)
    ).scalars().all()
    for request in asked:
        close(request, WITHDRAWN, actor=actor, reason=f"the token {requester!r} that asked for it was revoked")
        entries.append(request.model, request.alias, "request_withdraw", actor=actor, reason=request.close_reason,
                       served=served_number(request.model, request.alias), version=request.number,
                       details={"request_id": request.id, "requested_by": requester})
    return len(asked)


def close(request: ApprovalRequest, state: str, *, actor: str, reason: str) -> None:
    """End ``request`` in ``state`` (done, rejected, withdrawn, expired)."""
    request.state, request.closed_at, request.closed_by, request.close_reason = state, utcnow(), actor, reason or ""


def served_number(model: RegisteredModel, alias: str) -> int | None:
    """The version ``alias`` serves now (None: unset)."""
    current = find_alias(model, alias)
    return current.version.number if current is not None else None
