"""What an alias answers (the version it serves and, while a rollout runs, its traffic split), decided in
one place, once the alias's policy allows the change.

Every path that changes it comes through :func:`decide`: promote, break-glass, rollback, delete, a
completed rollout, a rollout's start or change (a canary of any share, a plan's first step, a shadow), a
plan's later step, and naming the classes of a version the alias answers (which changes what it answers
without moving it), whoever asks (a person, the approval that completes a request, the rollout
controller). The alias row's version and the rollout's arms are written nowhere else, and the policy is
asked nowhere else (``tests/unit/test_one_guard.py`` holds both), so a new path cannot change what
callers get without the policy. It runs in the caller's write transaction, with the model locked.
"""
from dataclasses import dataclass

from sqlalchemy import select

from registry.db import db
from registry.errors import Forbidden
from registry.governance.guard import Sanction, Vote, check_move
from registry.governance.policies import BREAK_GLASS
from registry.governance.requests import DONE
from registry.governance.standing import counted
from registry.governance.tables import ApprovalRequest
from registry.lookups import find_alias
from registry.reasons import check_reason
from registry.tables import Alias, ModelVersion, RegisteredModel, Rollout, utcnow

# The rollout changes: the kind the policy judges is the canary's (or the shadow's, when none answers).
ROLLOUT_CHANGES = ("rollout_start", "rollout_change", "rollout_step")


@dataclass(frozen=True)
class Mover:
    """Who asks for the change: a token's or a person's name, its role (None: the registry's rollout
    controller), a signed-in person's groups, and the final approval of a request the change completes."""

    actor: str
    role: str | None
    groups: tuple[str, ...] = ()
    vote: Vote | None = None


@dataclass(frozen=True)
class Arm:
    """A version taking part in a rollout, and its share of the alias's requests (percent)."""

    version: ModelVersion
    percent: float


@dataclass(frozen=True)
class Answer:
    """What the alias answers after the change: its version (None: the alias is removed) and, when a
    rollout changes, its canary (which answers callers) and its shadow (which answers nobody)."""

    primary: ModelVersion | None
    canary: Arm | None = None
    shadow: Arm | None = None


def decide(model: RegisteredModel, alias: str, answer: Answer, *, action: str, by: Mover,
           rollout: Rollout | None = None, reason: str = "", incompatible: list[str] = (),
           rollout_done: bool = False) -> Sanction | None:
    """Make ``answer`` what ``alias`` of ``model`` answers, if its policy allows ``by`` this ``action``
    (PolicyRefused, 409 with what is missing, if not); the request a final approval completes, if any.

    ``action``: promote, break_glass (an admin's, with a reason, past the policy), rollback,
    rollout_promote, delete (the alias row changes), classes (the version's class names change, ``answer``
    is what the alias serves already), or rollout_start, rollout_change, rollout_step
    (``rollout``'s arms change). ``incompatible``: how the candidate differs from the served version;
    ``rollout_done``: the change completes a plan that walked every step."""
    sanction = _allowed(model, alias, answer, action=action, by=by, rollout=rollout, reason=reason,
                        incompatible=list(incompatible), rollout_done=rollout_done)
    if action in ROLLOUT_CHANGES:
        _split(rollout, answer)
    else:
        _serve(model, alias, answer.primary)
    return sanction


def _allowed(model: RegisteredModel, alias: str, answer: Answer, *, action: str, by: Mover, rollout: Rollout | None,
             reason: str, incompatible: list[str], rollout_done: bool) -> Sanction | None:
    """Ask the policy: the one check of every change (break-glass checks its admin and reason instead)."""
    if action == BREAK_GLASS:
        if by.role != "admin":
            raise Forbidden(f"breaking the glass needs an admin token; {by.actor!r} has role {by.role!r}")
        check_reason(reason, action="breaking the glass")
        return None
    current = find_alias(model, alias)
    approved: tuple[str, ...] = ()
    if action in ROLLOUT_CHANGES:
        kind = ("canary" if answer.canary is not None else "shadow") if action != "rollout_step" \
            else "rollout_step" if by.role is None else "rollout_skip"  # the controller's step, or a person's skip
        candidate = answer.canary.version if answer.canary is not None else None
        if kind in ("rollout_step", "rollout_skip"):
            approved = _approvers_of(rollout)
    else:
        kind, candidate = action, answer.primary
    return check_move(model, alias, candidate=candidate, current=current.version if current is not None else None,
                      actor=by.actor, role=by.role, action=kind, incompatible=incompatible, vote=by.vote,
                      rollout_done=rollout_done, groups=by.groups, approved=approved)


def _approvers_of(rollout: Rollout) -> tuple[str, ...]:
    """Who approved the request that started ``rollout`` (its later steps carry their approval), as far as the
    policy now says the same of their approvals (registry/governance/standing.py)."""
    request = db.session.execute(
        select(ApprovalRequest).where(ApprovalRequest.rollout_id == rollout.id, ApprovalRequest.state == DONE)
        .order_by(ApprovalRequest.id.desc()).limit(1)
    ).scalar_one_or_none()
    return tuple(given.approver for given in counted(rollout.model, request)) if request is not None else ()


def _serve(model: RegisteredModel, alias: str, version: ModelVersion | None) -> None:
    """Point the alias at ``version`` (None: remove it)."""
    current = find_alias(model, alias)
    if version is None:
        if current is not None:
            db.session.delete(current)
    elif current is None:
        db.session.add(Alias(model_id=model.id, name=alias, version_id=version.id))
    elif current.version_id != version.id:
        current.version_id, current.updated_at = version.id, utcnow()


def _split(rollout: Rollout, answer: Answer) -> None:
    """Set the rollout's arms: its canary and shadow, with their shares (an arm not given is off)."""
    canary, shadow = answer.canary, answer.shadow
    rollout.canary = canary.version if canary is not None else None
    rollout.canary_percent = canary.percent if canary is not None else None
    rollout.shadow = shadow.version if shadow is not None else None
    rollout.shadow_percent = shadow.percent if shadow is not None else None
