"""Use cases of an alias's policy: protect an alias, read its policy, lift it. Every change is in its history."""
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from registry.db import db, write_transaction
from registry.errors import PolicyNotFound
from registry.governance import entries
from registry.governance.guard import policy_row
from registry.governance.policy import parsed, stored
from registry.governance.requests import OPEN, served_number
from registry.governance.standing import PolicyEntry, standings
from registry.governance.tables import AliasPolicy, ApprovalRequest
from registry.lookups import find_model
from registry.paging import Page, paginate
from registry.names import check_alias_name
from registry.tables import PromotionEvent, RegisteredModel, utcnow

BREAK_GLASS = "break_glass"
# The history actions that put an alias where it is (or remove it).
MOVES = ("promote", BREAK_GLASS, "rollback", "rollout_promote", "delete")


@dataclass(frozen=True)
class PolicyView:
    """An alias's policy as answered: the rules, and who set them when."""

    model: str
    alias: str
    policy: dict
    updated_by: str
    updated_at: datetime


def set_policy(name: str, alias: str, document: dict, *, reason: str, actor: str) -> PolicyView:
    """Protect ``alias`` with the policy ``document`` describes (or replace its policy); recorded as ``policy_set``."""
    check_alias_name(alias)
    checked = stored(document)
    with write_transaction():
        model = find_model(name, lock=True)
        row = policy_row(model, alias) or AliasPolicy(model_id=model.id, alias=alias)
        previous = row.document if row.id is not None else None
        row.document, row.updated_by, row.updated_at = checked, actor, utcnow()
        if row.id is None:
            db.session.add(row)
        entries.append(model, alias, "policy_set", actor=actor, reason=reason, served=served_number(model, alias),
                       details={"policy": checked, "previous": previous,
                                **_open_requests(model, alias, PolicyEntry(None, checked))})
        return _view(model.name, row)


def get_policy(name: str, alias: str) -> PolicyView:
    """The policy of ``alias``; 404 when it has none."""
    model = find_model(name)
    row = policy_row(model, alias)
    if row is None:
        raise PolicyNotFound(f"alias {alias!r} of {name!r} has no policy: it is not protected")
    return _view(model.name, row)


def list_policies(name: str, *, page: int, per_page: int) -> Page:
    """The policies of ``name``'s aliases, by alias name (a page of PolicyView); 404 when there is no such model."""
    model = find_model(name)
    query = select(AliasPolicy).where(AliasPolicy.model_id == model.id).order_by(AliasPolicy.alias)
    listed = paginate(query, page, per_page)
    return Page([_view(model.name, row) for row in listed.items], listed.total, listed.page, listed.per_page)


def delete_policy(name: str, alias: str, *, reason: str, actor: str) -> None:
    """Lift the policy of ``alias``: it moves as any alias again; recorded as ``policy_delete``."""
    with write_transaction():
        model = find_model(name, lock=True)
        row = policy_row(model, alias)
        if row is None:
            raise PolicyNotFound(f"alias {alias!r} of {name!r} has no policy: it is not protected")
        entries.append(model, alias, "policy_delete", actor=actor, reason=reason, served=served_number(model, alias),
                       details={"previous": row.document, **_open_requests(model, alias, PolicyEntry(None, None))})
        db.session.delete(row)


def _open_requests(model: RegisteredModel, alias: str, change: PolicyEntry) -> dict:
    """``{"requests": [{"request_id", "counted", "set_aside"}]}``: for each open request of ``alias``, whose
    approvals count and whose are set aside once ``change`` is made (registry/governance/standing.py); empty
    when none is open."""
    asked = db.session.execute(
        select(ApprovalRequest).where(ApprovalRequest.model_id == model.id, ApprovalRequest.alias == alias,
                                      ApprovalRequest.state == OPEN).order_by(ApprovalRequest.id)
    ).scalars().all()
    shown = []
    for request in asked:
        standing = standings(model, request, pending=change)
        shown.append({"request_id": request.id, "counted": [s.approval.approver for s in standing if s.counts],
                      "set_aside": [s.approval.approver for s in standing if not s.counts]})
    return {"requests": shown} if shown else {}


def _view(model: str, row: AliasPolicy) -> PolicyView:
    return PolicyView(model, row.alias, row.document, row.updated_by, row.updated_at)


@dataclass(frozen=True)
class Protection:
    """What the dashboard shows of an alias's governance: its policy, if any, the broken glass behind
    what it serves, if it got there past its policy, how many approval requests wait on it, and the end
    of the freeze window it is in now (None: not frozen)."""

    alias: str
    policy: dict | None
    broken_glass: PromotionEvent | None
    open_requests: int = 0
    frozen_until: datetime | None = None


def protections(name: str) -> dict[str, Protection]:
    """For each alias of ``name`` that is protected or serves a break-glass move, what to show of it."""
    model = find_model(name)
    rows = db.session.execute(select(AliasPolicy).where(AliasPolicy.model_id == model.id)).scalars()
    policies = {row.alias: row.document for row in rows}
    broken = {}
    for alias in model.alias_map:
        last = db.session.execute(
            select(PromotionEvent).where(PromotionEvent.model_id == model.id, PromotionEvent.alias == alias,
                                         PromotionEvent.action.in_(MOVES)).order_by(PromotionEvent.id.desc()).limit(1)
        ).scalar_one_or_none()
        if last is not None and last.action == BREAK_GLASS:
            broken[alias] = last
    now = utcnow()
    waiting = {alias: 0 for alias in policies}
    for alias in db.session.execute(select(ApprovalRequest.alias).where(
            ApprovalRequest.model_id == model.id, ApprovalRequest.state == OPEN, ApprovalRequest.expires_at > now)).scalars():
        waiting[alias] = waiting.get(alias, 0) + 1
    frozen = {alias: parsed(document).frozen_at(now) for alias, document in policies.items()}
    return {alias: Protection(alias, policies.get(alias), broken.get(alias), waiting.get(alias, 0),
                              frozen[alias].until if frozen.get(alias) else None)
            for alias in sorted({*policies, *broken})}
