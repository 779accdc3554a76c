"""Use cases of requests to move a protected alias: open one, approve it, reject it, withdraw a revoked
requester's, read them.

A request names a version for the alias, or a canary of it (a rollout: a share, or a plan); distinct
people approve it, never its requester nor the version's uploader. The approval that completes it
makes the move through the one promote use case (or starts the rollout through the one rollout use
case), which loads the version first and serves it once it commits, in the same transaction as the
approval itself: the change happens once, and only if the policy allows it then.
"""
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select

from registry.aliases.admission import incompatibilities, ready_version
from registry.aliases.moves import promote
from registry.aliases.plans import checked_plan
from registry.aliases.rollouts import HEADER_NAME, ArmSpec, start_rollout
from registry.db import db, end_read, write_transaction
from registry.errors import AliasNotFound, Conflict, Forbidden, InvalidInput, PolicyRefused
from registry.governance import entries
from registry.governance.evidence import evidence_of
from registry.governance.guard import Vote, check_plan, missing_rules, policy_of
from registry.governance.requests import (
    OPEN, REJECTED, check_approver, close, expire_due, find_request, open_request, served_number,
)
from registry.governance.standing import counted, give, in_force, standings
from registry.governance.tables import ApprovalRequest
from registry.lookups import find_alias, find_model
from registry.names import ALIAS_NAME, check_alias_name
from registry.paging import Page, paginate
from registry.reasons import check_reason
from registry.serving.runtime import Runtime
from registry.tables import RegisteredModel, utcnow

MAX_VOTE_RETRIES = 3
STATES = ("open", "done", "rejected", "withdrawn", "expired")


@dataclass(frozen=True)
class RequestView:
    """A request as answered: its state, its approvals, and what its move still lacks (while open)."""

    id: int
    model: str
    alias: str
    version: int
    state: str
    reason: str
    requested_by: str
    opened_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    close_reason: str
    approvals: list[dict]  # each: approver, reason, at, policy_entry, and (while open) counts and set_aside
    approvals_needed: int
    missing: list[dict]
    evidence: dict  # what the version shows for each evidence rule, beside the served version (while open)
    event_id: int | None
    rollout: dict | None  # a request for a canary: {"percent", "plan", "sticky_header"}; None for a promote


def open_approval_request(name: str, alias: str, *, number: int, reason: str, actor: str, owner: str, role: str,
                          groups: tuple[str, ...] = (), rollout: dict | None = None) -> RequestView:
    """Ask for ``alias`` to point at version ``number`` (or, with ``rollout``, ``{"percent"}`` or ``{"plan"}``
    and an optional ``"sticky_header"``, to start a canary of it); the requester (of ``role``; a signed-in
    person in ``groups``; a token of the person ``owner``) must be one of the policy's movers, and the last
    approval makes the change as them. No token of the requester's owner may approve it."""
    check_alias_name(alias)
    with write_transaction():
        model = find_model(name, lock=True)
        policy = policy_of(model, alias)
        if policy is None or policy.approvals == 0:
            what = "start the rollout" if rollout is not None else "promote the version"
            raise Conflict(f"alias {alias!r} of {name!r} needs no approval: {what} directly")
        version = ready_version(model, number)
        header = (rollout or {}).get("sticky_header")
        if header is not None and not HEADER_NAME.fullmatch(header):  # refused now, not at the last approval
            raise InvalidInput(f"sticky_header {header!r} is not a valid header name; use letters, digits and '-' "
                               "(e.g. X-User-Id)", errors={"rollout": {"sticky_header": ["not a valid header name"]}})
        if rollout is not None and rollout.get("plan") is not None:
            served = find_alias(model, alias)
            current = served.version if served is not None else None
            check_plan(model, alias, canary=version, current=current,
                       on_success=checked_plan(rollout["plan"], task=version.task).on_success,
                       incompatible=incompatibilities(current, version) if current is not None else [])
        if not policy.may_move(actor, role, groups):
            raise PolicyRefused(f"{actor!r} may not move {alias!r}, so may not ask to", [{
                "rule": "movers", "detail": f"the policy lets roles {list(policy.mover_roles)}, tokens "
                                            f"{list(policy.mover_tokens)} and groups {list(policy.mover_groups)} "
                                            f"move {alias!r}"}])
        request = ApprovalRequest(
            model_id=model.id, alias=alias, version_id=version.id, state=OPEN, reason=reason or "",
            requested_by=actor, requester_owner=owner, requester_role=role, requester_groups=list(groups) or None,
            opened_at=utcnow(), expires_at=utcnow() + policy.request_lifetime(),
            close_reason="", rollout=rollout,
        )
        db.session.add(request)
        db.session.flush()
        entries.append(model, alias, "request_open", actor=actor, reason=reason, served=served_number(model, alias),
                       version=number, details={"request_id": request.id, "approvals_needed": policy.approvals})
        return view(model, request)


def approve(runtime: Runtime, name: str, *, alias: str, request_id: int, reason: str, actor: str,
            owner: str) -> RequestView:
    """Approve request ``request_id`` as ``actor`` (a token of the person ``owner``, or that person); the
    approval that completes it moves the alias (409 with what is missing if the policy refuses the move
    then: the approval is not recorded). Each person approves once, whichever of their tokens they use."""
    _expire(name)
    for _ in range(MAX_VOTE_RETRIES):
        model = find_model(name)
        request = open_request(model, alias, request_id)
        check_approver(request, actor, owner)
        if _completes(model, alias, request):
            number, requester, role, asked = request.number, request.requested_by, request.requester_role, request.reason
            groups = tuple(request.requester_groups or ())
            rollout, vote = request.rollout, Vote(request_id, actor, reason, owner)
            end_read()
            if rollout is None:
                promote(runtime, name, number=number, alias=alias, reason=asked or f"request {request_id}",
                        force=False, actor=requester, role=role, vote=vote, groups=groups)
            else:
                start_rollout(runtime, name=name, alias=alias, canary=ArmSpec(number, rollout.get("percent") or 100.0),
                              shadow=None, sticky_header=rollout.get("sticky_header"), plan=rollout.get("plan"),
                              reason=asked or f"request {request_id}", force=False, actor=requester, role=role,
                              groups=groups, vote=vote)
            return get_request(name, alias, request_id)
        with write_transaction():
            model = find_model(name, lock=True)
            request = open_request(model, alias, request_id)
            check_approver(request, actor, owner)
            if _completes(model, alias, request):
                continue  # another approval came meanwhile: this one completes it, through the move
            entry = in_force(model, alias)
            give(request, approver=actor, owner=owner, reason=reason, policy_entry=entry)
            entries.append(model, alias, "approve", actor=actor, reason=reason, served=served_number(model, alias),
                           version=request.number, details={"request_id": request.id,
                                                            "approvals": len(counted(model, request)), "final": False,
                                                            "policy_entry": entry})
        return get_request(name, alias, request_id)
    raise Conflict(f"request {request_id} kept changing during the approval; try again")


def reject(name: str, alias: str, *, request_id: int, reason: str, actor: str, owner: str) -> RequestView:
    """Close request ``request_id`` unapproved, with a reason (its requester, with any of their owner's
    tokens, may withdraw it so too)."""
    check_reason(reason, action="a rejection")
    _expire(name)
    with write_transaction():
        model = find_model(name, lock=True)
        request = open_request(model, alias, request_id)
        if actor != request.requested_by and owner != request.requester_owner:
            check_approver(request, actor, owner)
        close(request, REJECTED, actor=actor, reason=reason)
        entries.append(model, alias, "request_reject", actor=actor, reason=reason, served=served_number(model, alias),
                       version=request.number, details={"request_id": request.id})
    return get_request(name, alias, request_id)


def get_request(name: str, alias: str, request_id: int) -> RequestView:
    """One request, with its approvals and what its move still lacks."""
    model = find_model(name)
    return view(model, find_request(model, alias, request_id))


def list_requests(name: str, alias: str, *, state: str | None, page: int, per_page: int) -> Page:
    """The alias's requests, newest first; ``state`` filters. Requests past their expiry are closed first."""
    if not ALIAS_NAME.fullmatch(alias):
        raise AliasNotFound(f"model {name!r} has no alias {alias!r}: no alias has such a name")
    _expire(name)
    model = find_model(name)
    query = select(ApprovalRequest).where(ApprovalRequest.model_id == model.id, ApprovalRequest.alias == alias)
    if state is not None:
        query = query.where(ApprovalRequest.state == state)
    listed = paginate(query.order_by(ApprovalRequest.id.desc()), page, per_page)
    return Page([view(model, request) for request in listed.items], listed.total, listed.page, listed.per_page)


def approvable(name: str, alias: str, *, actor: str, owner: str) -> set[int]:
    """The open requests of ``alias`` that ``actor`` (of the person ``owner``) may approve now: not their own
    nor of a version they uploaded, not approved by them yet, and, where their approval would be the last,
    a move the policy then allows (no freeze, no missing evidence), so that the approval is not refused."""
    model = find_model(name)
    ids = set()
    for request in db.session.execute(select(ApprovalRequest).where(
            ApprovalRequest.model_id == model.id, ApprovalRequest.alias == alias, ApprovalRequest.state == OPEN,
            ApprovalRequest.expires_at > utcnow())).scalars():
        try:
            check_approver(request, actor, owner)
        except (Conflict, Forbidden):
            continue
        blocked = [m for m in view(model, request).missing if m["rule"] != "approvals"]
        if not (blocked and _completes(model, alias, request)):
            ids.add(request.id)
    return ids


def view(model: RegisteredModel, request: ApprovalRequest) -> RequestView:
    """``request`` as answered; an open one with what its move lacks now, approvals included."""
    policy = policy_of(model, request.alias)
    still_open = request.state == OPEN
    approvals = [{"approver": s.approval.approver, "reason": s.approval.reason, "at": s.approval.at,
                  "policy_entry": s.approval.policy_entry, "counts": s.counts if still_open else None,
                  "set_aside": s.set_aside if still_open else None} for s in standings(model, request)]
    missing, evidence = [], {}
    if still_open and policy is not None:
        current = find_alias(model, request.alias)
        served = current.version if current is not None else None
        incompatible = incompatibilities(served, request.version) if served is not None else []
        missing = missing_rules(
            policy, model, request.alias, candidate=request.version, current=served, actor=request.requested_by,
            role=request.requester_role, action="canary" if request.rollout is not None else "promote",
            incompatible=incompatible, approvers=sum(1 for given in approvals if given["counts"]),
        )
        evidence = evidence_of(policy, candidate=request.version, current=served, incompatible=incompatible)
    return RequestView(
        id=request.id, model=model.name, alias=request.alias, version=request.number, state=request.state,
        reason=request.reason, requested_by=request.requested_by, opened_at=request.opened_at,
        expires_at=request.expires_at, closed_at=request.closed_at, closed_by=request.closed_by,
        close_reason=request.close_reason, approvals=approvals,
        approvals_needed=policy.approvals if policy is not None else 0, missing=missing, evidence=evidence,
        event_id=request.event_id, rollout=request.rollout,
    )


def _completes(model: RegisteredModel, alias: str, request: ApprovalRequest) -> bool:
    """Whether one more approval gives ``request`` all the approvals its alias's policy asks for now (those
    given under an earlier policy that it does not say the same of do not count)."""
    policy = policy_of(model, alias)
    return policy is None or len(counted(model, request)) + 1 >= policy.approvals


def _expire(name: str) -> None:
    """Close the model's open requests past their expiry, if there are any (a write only then)."""
    model = find_model(name)
    due = db.session.execute(select(exists().where(
        ApprovalRequest.model_id == model.id, ApprovalRequest.state == OPEN, ApprovalRequest.expires_at <= utcnow(),
    ))).scalar()
    if not due:
        end_read()
        return
    with write_transaction():
        expire_due(find_model(name, lock=True))
