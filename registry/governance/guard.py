"""The check every change of what an alias answers passes, in its transaction, under the model's lock.

It is asked by one caller only, :func:`registry.aliases.answers.decide`, which every move and every
traffic split goes through. An alias without a policy moves as before. A protected alias changes only
when its policy allows: the mover is named by it, no freeze window covers now, the version shows the
evidence, and enough people approved (``RULES`` says which rules each kind of change meets). A
request's final approval is recorded here, in the transaction of the change it makes, so the change
happens once and only with every rule met.
"""
from dataclasses import dataclass

from sqlalchemy import select

from registry.db import db
from registry.errors import PolicyRefused
from registry.governance import entries
from registry.governance.evidence import missing_evidence
from registry.governance.policy import CONTROLLER, Policy, parsed
from registry.governance.requests import DONE, check_approver, close, open_request
from registry.governance.standing import counted, give, in_force
from registry.governance.tables import AliasPolicy, ApprovalRequest
from registry.tables import ModelVersion, PromotionEvent, RegisteredModel, utcnow

# The rules each kind of change meets. A promote, a completed rollout and a canary (of any share, by hand or
# a plan's first step) put a version before the alias's callers: every rule (a canary earns the rollout
# evidence, so not that one). A plan's later step raises its canary's share: the rules that can change while
# it runs (its approvals are those of the request that started it, and the controller's mover is whoever
# started it; a person who skips a step must be a mover). Rollback and delete only need the mover, no freeze
# and the approvals. Naming a served version's classes changes what its callers get (``0`` becomes ``"benign"``):
# the mover, no freeze, and the approvals, which no request can gather for it (so it is refused where they are
# asked: name the classes before the version serves the alias). A shadow answers nobody: no rule (the route's
# rollout right is enough).
RULES = {
    "promote": ("movers", "freeze", "evidence", "rollout", "approvals"),
    "rollout_promote": ("movers", "freeze", "evidence", "rollout", "approvals"),
    "canary": ("movers", "freeze", "evidence", "approvals"),
    "rollout_step": ("freeze", "evidence", "approvals"),
    "rollout_skip": ("movers", "freeze", "evidence", "approvals"),
    "rollback": ("movers", "freeze", "approvals"),
    "delete": ("movers", "freeze", "approvals"),
    "classes": ("movers", "freeze", "approvals"),
    "shadow": (),
}


@dataclass(frozen=True)
class Vote:
    """An approval of request ``request_id`` by ``approver`` (a token of the person ``owner``, or a person),
    given with the move it completes."""

    request_id: int
    approver: str
    reason: str
    owner: str


@dataclass(frozen=True)
class Sanction:
    """The approved request a move completes; the move's event names it."""

    request: ApprovalRequest
    details: dict

    def settle(self, event: PromotionEvent, rollout_id: int | None = None) -> None:
        """Point the request at the change that completed it (and the rollout it started, if any)."""
        self.request.event_id = event.id
        self.request.rollout_id = rollout_id


def policy_row(model: RegisteredModel, alias: str) -> AliasPolicy | None:
    """The stored policy of ``alias``, if it is protected."""
    return db.session.execute(
        select(AliasPolicy).where(AliasPolicy.model_id == model.id, AliasPolicy.alias == alias)
    ).scalar_one_or_none()


def policy_of(model: RegisteredModel, alias: str) -> Policy | None:
    """The policy of ``alias``, if it is protected."""
    row = policy_row(model, alias)
    return parsed(row.document) if row is not None else None


def check_move(model: RegisteredModel, alias: str, *, candidate: ModelVersion | None, current: ModelVersion | None,
               actor: str, role: str | None, action: str, incompatible: list[str] = (), vote: Vote | None = None,
               rollout_done: bool = False, groups: tuple[str, ...] = (), approved: tuple[str, ...] = ()) -> Sanction | None:
    """PolicyRefused (409, with what is missing) unless ``alias``'s policy allows ``actor`` this ``action``
    (a key of ``RULES``).

    With ``vote``, the request's final approval is checked and recorded and the request closed: the move
    it completes is then made for its requester (``actor``, ``role``). ``groups``: a signed-in person's.
    ``approved``: who approved already what this change continues (a plan's step: the request that started it)."""
    policy = policy_of(model, alias)
    request = open_request(model, alias, vote.request_id) if vote is not None else None
    if request is not None:
        check_approver(request, vote.approver, vote.owner)
    if policy is None:
        return _sanction(model, alias, request, vote, current) if request is not None else None
    approvers = [given.approver for given in counted(model, request)] + [vote.approver] if request is not None \
        else approved
    missing = missing_rules(policy, model, alias, candidate=candidate, current=current, actor=actor, role=role,
                            action=action, incompatible=incompatible, approvers=len(approvers), rollout_done=rollout_done,
                            groups=groups)
    if missing:
        raise PolicyRefused(f"the policy of {alias!r} of {model.name!r} does not allow this {action}: "
                            + "; ".join(item["rule"] for item in missing) + " missing", missing)
    return _sanction(model, alias, request, vote, current) if request is not None else None


def missing_rules(policy: Policy, model: RegisteredModel, alias: str, *, candidate: ModelVersion | None,
                  current: ModelVersion | None, actor: str, role: str | None, action: str, incompatible: list[str],
                  approvers: int, rollout_done: bool = False, groups: tuple[str, ...] = ()) -> list[dict]:
    """Every rule of ``policy`` this move does not meet, as ``{"rule", "detail", …}`` (empty: it may go)."""
    rules, missing = RULES[action], []
    if "movers" in rules and not policy.may_move(actor, role, groups):
        named = (f"roles {list(policy.mover_roles)}, tokens {list(policy.mover_tokens)} and groups "
                 f"{list(policy.mover_groups)}" if policy.mover_groups
                 else f"roles {list(policy.mover_roles)} and tokens {list(policy.mover_tokens)}")
        missing.append({"rule": "movers", "detail": f"{actor!r} may not move {alias!r}: the policy lets {named} move it"})
    frozen = policy.frozen_at(utcnow())
    if frozen is not None and "freeze" in rules:
        missing.append({"rule": "freeze", "detail": f"{alias!r} is frozen until {frozen.until.isoformat()}"
                                                    + (f" ({frozen.reason})" if frozen.reason else "")
                                                    + "; wait, or break the glass (admin, with a reason)",
                        "until": frozen.until.isoformat()})
    if "evidence" in rules and candidate is not None:
        missing += missing_evidence(policy, model, alias, candidate=candidate, current=current,
                                    incompatible=list(incompatible), rollout_done=rollout_done or "rollout" not in rules)
    if "approvals" in rules and approvers < policy.approvals and action == "classes":
        missing.append({"rule": "approvals", "detail": f"{alias!r} needs {policy.approvals} approvals to change what "
                                                       "it answers, which no request gathers for naming classes: name "
                                                       "a version's classes before it serves the alias (or upload "
                                                       "the model again with the names in its metadata and request "
                                                       "its promotion)", "needed": policy.approvals, "given": 0})
    elif "approvals" in rules and approvers < policy.approvals:
        ask = "with a \"rollout\" " if action in ("canary", "rollout_step", "rollout_skip") else ""
        missing.append({"rule": "approvals", "detail": f"{approvers} of {policy.approvals} approvals: open a "
                                                       f"request {ask}(POST /models/{model.name}/aliases/{alias}/requests) "
                                                       "and have it approved", "needed": policy.approvals,
                        "given": approvers})
    return missing


def check_plan(model: RegisteredModel, alias: str, *, canary: ModelVersion, current: ModelVersion | None,
               on_success: str, incompatible: list[str]) -> None:
    """PolicyRefused up front for a rollout plan that would promote ``alias`` by itself where its policy
    would refuse the controller at the plan's end (it needs approvals, or does not name the controller)."""
    policy = policy_of(model, alias)
    if policy is None or on_success != "promote":
        return
    missing = []
    if not policy.may_move(CONTROLLER, None):
        missing.append({"rule": "movers", "detail": f"the policy of {alias!r} does not let the rollout controller "
                                                    f"({CONTROLLER!r}) move it"})
    if policy.approvals:
        missing.append({"rule": "approvals", "detail": f"{alias!r} needs {policy.approvals} approvals, which a plan "
                                                       "cannot gather: give the plan on_success \"halt\", then "
                                                       "request approval of the canary", "needed": policy.approvals,
                        "given": 0})
    missing += [item for item in missing_evidence(policy, model, alias, candidate=canary, current=current,
                                                  incompatible=incompatible, rollout_done=True)]
    if missing:
        raise PolicyRefused(f"a plan that promotes {alias!r} of {model.name!r} by itself is refused by its policy: "
                            + "; ".join(item["rule"] for item in missing) + " missing", missing)


def _sanction(model: RegisteredModel, alias: str, request: ApprovalRequest, vote: Vote,
              current: ModelVersion | None) -> Sanction:
    """Record the final approval and close the request as done, in the move's transaction."""
    entry = in_force(model, alias)
    give(request, approver=vote.approver, owner=vote.owner, reason=vote.reason, policy_entry=entry)
    approvers = [given.approver for given in counted(model, request)]
    entries.append(model, alias, "approve", actor=vote.approver, reason=vote.reason,
                   served=current.number if current is not None else None, version=request.number,
                   details={"request_id": request.id, "approvals": len(approvers), "final": True,
                            "policy_entry": entry})
    close(request, DONE, actor=vote.approver, reason=vote.reason)
    return Sanction(request, {"request_id": request.id, "approved_by": approvers})
