"""Which approvals of a request count under its alias's policy now, when the policy changed while it was open.

An approval is given under the policy in force then (``Approval.policy_entry``: the id of the alias's
``policy_set`` history entry). It counts under the policy in force now if

- the policy was not lifted since (no ``policy_delete`` of the alias after that entry): a policy lifted and
  set again starts the request's evidence again, whatever it says; and
- the policy now says the same of what the approver vouched for: the same ``movers`` (who may ask) and the
  same ``require`` (what the version must show) as the policy it was given under. A change of ``approvals``
  (how many), ``freeze`` or ``request_hours`` keeps it counting.

An approval that does not count is shown, set aside with the reason; its person may approve again (their
approval is then given under the policy now).
"""
from dataclasses import dataclass

from sqlalchemy import select

from registry.db import db
from registry.governance.tables import Approval, ApprovalRequest
from registry.tables import PromotionEvent, RegisteredModel, utcnow

TERMS = ("movers", "require")  # what an approval vouches for: who may ask, what the version shows
POLICY_ACTIONS = ("policy_set", "policy_delete")


@dataclass(frozen=True)
class Standing:
    """An approval, whether it counts under the policy now, and why not (``set_aside``) when it does not."""

    approval: Approval
    counts: bool
    set_aside: str | None = None


@dataclass(frozen=True)
class PolicyEntry:
    """A change of the alias's policy, as its history entry says: ``document`` None for a lift."""

    id: int | None  # None: the change being made (its entry is not written yet)
    document: dict | None


def policy_entries(model: RegisteredModel, alias: str) -> list[PolicyEntry]:
    """Every change of ``alias``'s policy, oldest first."""
    rows = db.session.execute(
        select(PromotionEvent.id, PromotionEvent.action, PromotionEvent.details)
        .where(PromotionEvent.model_id == model.id, PromotionEvent.alias == alias,
               PromotionEvent.action.in_(POLICY_ACTIONS)).order_by(PromotionEvent.id)
    ).all()
    return [PolicyEntry(id, (details or {}).get("policy") if action == "policy_set" else None)
            for id, action, details in rows]


def in_force(model: RegisteredModel, alias: str) -> int | None:
    """The id of the entry that set ``alias``'s policy in force now (None: it has none)."""
    changes = policy_entries(model, alias)
    return changes[-1].id if changes and changes[-1].document is not None else None


def standings(model: RegisteredModel, request: ApprovalRequest, *, pending: PolicyEntry | None = None) -> list[Standing]:
    """Each approval of ``request`` and whether it counts under the policy now (or once ``pending``, a change
    being made, is)."""
    changes = policy_entries(model, request.alias) + ([pending] if pending is not None else [])
    return [_standing(approval, changes) for approval in request.approvals]


def counted(model: RegisteredModel, request: ApprovalRequest) -> list[Approval]:
    """The approvals of ``request`` that count under the policy now."""
    return [standing.approval for standing in standings(model, request) if standing.counts]


def _standing(approval: Approval, changes: list[PolicyEntry]) -> Standing:
    given = next((change for change in changes if change.id is not None and change.id == approval.policy_entry), None)
    if given is None:
        return Standing(approval, False, "given under no policy the history records: approve again")
    later = changes[changes.index(given) + 1:]
    lifted = next((change for change in later if change.document is None), None)
    if lifted is not None:
        when = f"at entry {lifted.id}" if lifted.id is not None else "now"
        return Standing(approval, False, f"given under the policy of entry {given.id}, lifted {when}: a policy set "
                                         "again starts the request's evidence again")
    now = later[-1] if later else given
    differ = [term for term in TERMS if (now.document or {}).get(term) != (given.document or {}).get(term)]
    if differ:
        which = f"entry {now.id}" if now.id is not None else "now"
        return Standing(approval, False, f"given under the policy of entry {given.id}; the policy of {which} differs in "
                                         f"{' and '.join(differ)}: approve again")
    return Standing(approval, True)


def give(request: ApprovalRequest, *, approver: str, owner: str, reason: str, policy_entry: int | None) -> Approval:
    """Record ``approver``'s approval (of the person ``owner``) under the policy of ``policy_entry``: a new one,
    or their set-aside one given again (one approval per person), in the caller's transaction."""
    approval = next((given for given in request.approvals if given.owner == owner or given.approver == approver), None)
    if approval is None:
        approval = Approval(request_id=request.id)
        db.session.add(approval)
    approval.approver, approval.owner, approval.reason = approver, owner, reason or ""
    approval.policy_entry, approval.at = policy_entry, utcnow()
    db.session.flush()
    db.session.refresh(request, ["approvals"])
    return approval
