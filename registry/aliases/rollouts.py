"""Use cases of a rollout on an alias: start or replace it, read it, complete it, abort it.

A rollout is changed under the model's lock, like an alias move, and every change is an event in
the alias's history. Its versions are admitted by the rules of promote: ready, loaded, scored on
their input example and compatible with the primary version (unless forced). The process that
made a change serves it once it commits; the others follow within the alias refresh window.
"""
import math
import re
from dataclasses import dataclass, replace

from registry import changes
from registry.aliases.admission import admit, incompatibilities, ready_version
from registry.aliases.answers import Answer, Arm, Mover, decide
from registry.aliases.plans import Plan, checked_plan
from registry.aliases.rollout_report import RolloutState, describe, plan_view, settings
from registry.db import db, end_read, write_transaction
from registry.errors import Conflict, InvalidInput, RolloutNotFound, VersionNotFound
from registry.events import outbox
from registry.facts import RolloutSpec, VersionInfo
from registry.governance.guard import Vote, check_plan
from registry.lookups import active_rollout, active_rollouts, find_alias, find_model
from registry.names import check_alias_name
from registry.serving.figures import fold, summed
from registry.serving.routing import CANARY, SHADOW
from registry.serving.runtime import Runtime
from registry.tables import ModelVersion, PromotionEvent, RegisteredModel, Rollout, RolloutPlan, utcnow

# The webhook event each history action of a rollout is announced as.
ANNOUNCED = {
    "rollout_start": "rollout.started",
    "rollout_change": "rollout.changed",
    "rollout_promote": "rollout.completed",
    "rollout_abort": "rollout.aborted",
    "rollout_step": "rollout.step",
    "rollout_halt": "rollout.halted",
    "rollout_pause": "rollout.paused",
    "rollout_resume": "rollout.resumed",
}
# A header field name is an RFC 9110 token.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")


@dataclass(frozen=True)
class ArmSpec:
    """A version asked to take part in a rollout, and its share of the alias's requests."""

    version: int
    percent: float


@dataclass(frozen=True)
class Completion:
    """The alias move that completed a rollout (the shape of a promote's answer)."""

    model: str
    alias: str
    version: int
    previous_version: int
    event_id: int


def start_rollout(runtime: Runtime, *, name: str, alias: str, canary: ArmSpec | None, shadow: ArmSpec | None,
                  sticky_header: str | None, reason: str, force: bool, actor: str, role: str | None,
                  plan: dict | None = None, groups: tuple[str, ...] = (), vote: Vote | None = None) -> RolloutState:
    """Start a rollout on ``alias``, or replace the one running; its versions load before they take traffic.

    With ``plan`` (raw, as sent: checked here against the canary's task) the canary starts at the
    plan's first step and the controller walks it; without one, a plan the rollout had is dropped.
    A canary answers the alias's callers, so the alias's policy must allow ``actor`` (of ``role``; a
    signed-in person in ``groups``) to start it, as for a promote; ``vote``: the final approval of a
    request for this rollout, which it completes for its requester (``actor``)."""
    check_alias_name(alias)
    model = find_model(name)
    primary = _primary(model, alias)
    checked = _checked_plan(plan, model, primary, canary, force)
    if checked is not None:
        canary = ArmSpec(canary.version, checked.steps[0].percent)
    arms = _checked_arms(canary, shadow, sticky_header)
    for arm, spec in arms.items():
        admit(runtime.models, _admitted(model, primary, spec, arm, force)[0], refused_as=f"made the {arm}")
    runtime.flush_figures()  # a change answers the figures so far, this process's latest counts included
    with write_transaction():
        model = find_model(name, lock=True)
        primary = _primary(model, alias)
        admitted = {arm: _admitted(model, primary, spec, arm, force) for arm, spec in arms.items()}
        if checked is not None:
            canary_row = admitted[CANARY][0]
            check_plan(model, alias, canary=canary_row, current=primary, on_success=checked.on_success,
                       incompatible=incompatibilities(primary, canary_row))
        rollout = active_rollout(model, alias)
        unchanged = rollout is not None and settings(rollout) == _wanted(rollout.id, admitted, arms, sticky_header)
        if unchanged and checked is None and plan_of(rollout) is None and vote is None:
            return _described(rollout, primary.number)
        action = "rollout_change" if rollout is not None else "rollout_start"
        rollout = rollout or _new_rollout(model, alias, reason, actor)
        answer = Answer(primary, *(Arm(admitted[arm][0], arms[arm].percent) if arm in admitted else None
                                   for arm in (CANARY, SHADOW)))
        sanction = decide(model, alias, answer, action=action, by=Mover(actor, role, groups, vote), rollout=rollout,
                          incompatible=incompatibilities(primary, answer.canary.version) if answer.canary else [])
        _apply(rollout, sticky_header, reason)
        rollout.mirror = checked is not None and "agreement" in checked.gates
        _set_plan(rollout, checked)
        extra = {"plan": checked.to_row()} if checked is not None else {}
        event = _record(model, rollout, action, actor=actor, reason=reason, to_version=primary.number,
                        forced=any(forced for _, forced in admitted.values()),
                        **extra, **(sanction.details if sanction is not None else {}))
        if sanction is not None:
            sanction.settle(event, rollout.id)
        changes.record(changes.AliasServes(name, alias, VersionInfo.of(primary), RolloutSpec.of(rollout)))
        return _described(rollout, primary.number)


def running_rollouts(name: str | None = None) -> dict[tuple[str, str], dict]:
    """The settings of every running rollout (of one model, or of all), by (model, alias)."""
    return {
        (rollout.model.name, rollout.alias): settings(rollout)
        for rollout in active_rollouts()
        if name is None or rollout.model.name == name
    }


def get_rollout(name: str, alias: str) -> RolloutState:
    """The rollout running on ``alias`` with its figures so far; 404 when none runs."""
    model = find_model(name)
    rollout = _active(model, alias)
    return _described(rollout, _primary(model, alias).number)


def plan_of(rollout: Rollout) -> RolloutPlan | None:
    """The plan ``rollout`` walks, if it was given one."""
    return db.session.get(RolloutPlan, rollout.id)


def complete_rollout(runtime: Runtime, *, name: str, alias: str, reason: str, actor: str, role: str | None,
                     at_step: int | None = None, groups: tuple[str, ...] = (), **evidence) -> Completion:
    """Promote the canary: the alias moves to it, the event carries the figures (and the ``evidence``
    that decided it, when the controller completes), and the rollout ends.

    ``at_step`` (the controller's): only if the plan still runs at that step, else Conflict. A protected
    alias's policy is checked for ``actor`` (of ``role``; None: the controller; a signed-in person in
    ``groups``) as for a promote."""
    model = find_model(name)
    planned = _active(model, alias)
    if planned.canary is None:
        raise Conflict(f"the rollout on {alias!r} of {name!r} has no canary to promote; abort it instead")
    number, rollout_id = planned.canary.number, planned.id
    admit(runtime.models, ready_version(model, number))
    runtime.flush_figures()  # this process's latest counts go into the recorded figures
    with write_transaction():
        model = find_model(name, lock=True)
        rollout, current = _active(model, alias), find_alias(model, alias)
        if rollout.id != rollout_id or rollout.canary is None or rollout.canary.number != number:
            raise Conflict(f"the rollout on {alias!r} of {name!r} changed meanwhile; read it again and retry")
        _check_step(rollout, at_step)
        canary, previous = ready_version(model, number), current.version
        plan = plan_of(rollout)
        decide(model, alias, Answer(canary), action="rollout_promote", by=Mover(actor, role, groups),
               incompatible=incompatibilities(previous, canary),
               rollout_done=plan is not None and plan.step == len(plan.steps) - 1)
        figures = describe(rollout, previous.number, summed(rollout.id)).figures()
        _end(rollout, "promoted", f"promoted by {actor}: {reason}")
        event = _record(model, rollout, "rollout_promote", actor=actor, reason=reason, from_version=previous.number,
                        to_version=number, forced=bool(incompatibilities(previous, canary)), figures=figures,
                        **evidence)
        fold(rollout.id)
        changes.record(changes.AliasServes(name, alias, VersionInfo.of(canary)))
    return Completion(name, alias, number, previous.number, event.id)


def abort_rollout(runtime: Runtime, *, name: str, alias: str, reason: str, actor: str,
                  at_step: int | None = None, **evidence) -> RolloutState:
    """End the rollout: all of the alias's traffic goes back to its primary version; recorded (with
    ``evidence``, the figures that decided it, when the controller aborts).

    ``at_step`` (the controller's): only if the plan still runs at that step, else Conflict."""
    runtime.flush_figures()  # this process's latest counts go into the figures answered
    with write_transaction():
        model = find_model(name, lock=True)
        rollout, primary = _active(model, alias), _primary(model, alias)
        _check_step(rollout, at_step)
        _end(rollout, "aborted", f"aborted by {actor}: {reason}")
        _record(model, rollout, "rollout_abort", actor=actor, reason=reason, to_version=primary.number, **evidence)
        fold(rollout.id)
        changes.record(changes.AliasServes(name, alias, VersionInfo.of(primary)))
        return describe(rollout, primary.number, summed(rollout.id))


def end_on_move(model: RegisteredModel, alias: str, *, action: str, actor: str) -> None:
    """End the alias's rollout, if one runs, because ``action`` (promote, rollback) moves the alias; recorded.

    Runs inside the move's transaction, with the model locked.
    """
    rollout = active_rollout(model, alias)
    if rollout is None:
        return
    _end(rollout, "aborted", f"ended by a {action} of {alias!r}")
    primary = _primary(model, alias).number
    _record(model, rollout, "rollout_abort", actor=actor, reason=f"ended by a {action} of {alias!r}",
            to_version=primary, ended_by=action)  # the move records what the alias serves next
    fold(rollout.id)


def step_rollout(*, name: str, alias: str, at_step: int, percent: float, actor: str, reason: str,
                 evidence: dict, any_state: bool = False, role: str | None = None,
                 groups: tuple[str, ...] = ()) -> None:
    """Move a planned rollout to its next step: the canary's share becomes ``percent``; recorded with
    the ``evidence`` that passed the step. Conflict unless the plan still runs at ``at_step`` (in any
    state with ``any_state``: a person skipping a paused step); PolicyRefused if the alias's policy refuses
    the larger share now (a freeze began, the policy changed since the plan started). ``role`` None: the
    rollout controller; a person (of ``role``, in ``groups``) who skips a step must also be a mover."""
    with write_transaction():
        model = find_model(name, lock=True)
        rollout, primary = _active(model, alias), _primary(model, alias)
        _check_step(rollout, at_step, any_state)
        plan = plan_of(rollout)
        shadow = Arm(rollout.shadow, rollout.shadow_percent) if rollout.shadow is not None else None
        decide(model, alias, Answer(primary, Arm(rollout.canary, percent), shadow), action="rollout_step",
               by=Mover(actor, role, groups), rollout=rollout, incompatible=incompatibilities(primary, rollout.canary))
        rollout.changed_at = utcnow()
        plan.step, plan.updated_at, plan.detail = at_step + 1, utcnow(), reason
        _restart_step(plan)
        _record(model, rollout, "rollout_step", actor=actor, reason=reason, to_version=primary.number,
                step=plan.step + 1, **evidence)  # steps are numbered from 1 wherever people read them
        changes.record(changes.AliasServes(name, alias, VersionInfo.of(primary), RolloutSpec.of(rollout)))


def set_plan_state(*, name: str, alias: str, state: str, actor: str, reason: str, at_step: int | None = None,
                   evidence: dict | None = None) -> RolloutState:
    """Pause, resume or halt the plan of ``alias``'s rollout; recorded. A resumed step starts counting
    again (its figures and time from now). ``at_step`` (the controller's): Conflict if the plan moved."""
    action = {"paused": "rollout_pause", "running": "rollout_resume", "halted": "rollout_halt"}[state]
    with write_transaction():
        model = find_model(name, lock=True)
        rollout, primary = _active(model, alias), _primary(model, alias)
        plan = plan_of(rollout)
        if plan is None:
            raise Conflict(f"the rollout on {alias!r} of {name!r} has no plan; start one with a plan to pause or resume it")
        if at_step is not None:
            _check_step(rollout, at_step)
        if state == "running" and plan.state not in ("paused", "halted"):
            raise Conflict(f"the plan is {plan.state}, not paused or halted: nothing to resume")
        if state == "paused" and plan.state != "running":
            raise Conflict(f"the plan is {plan.state}, not running: nothing to pause")
        plan.state, plan.detail, plan.updated_at = state, f"{action.removeprefix('rollout_')} by {actor}: {reason}", utcnow()
        if evidence and "gates" in evidence:
            plan.verdicts, plan.figures = evidence["gates"], evidence.get("step_figures")  # what decided the halt stays in view
        if state == "running":
            _restart_step(plan)
            rollout.changed_at = utcnow()  # a new split: its keys are counted afresh, as its figures are
        _record(model, rollout, action, actor=actor, reason=reason, to_version=primary.number, step=plan.step + 1,
                **(evidence or {}))
        return _described(rollout, primary.number)


def skip_step(runtime: Runtime, *, name: str, alias: str, actor: str, role: str | None, reason: str,
              groups: tuple[str, ...] = ()) -> RolloutState:
    """A person moves the plan past its step without waiting for its gates: to the next step, or past
    the last one (the canary promoted, unless ``on_success`` is halt); the rollout as it is then."""
    model = find_model(name)
    rollout = _active(model, alias)
    plan = plan_of(rollout)
    if plan is None or plan.state not in ("running", "paused", "halted"):
        raise Conflict(f"the rollout on {alias!r} of {name!r} has no plan in progress to advance")
    step, rollout_id = plan.step, rollout.id
    if step + 1 >= len(plan.steps):
        if plan.on_success != "promote":
            raise Conflict("the plan is at its last step and its on_success is halt: promote the canary or abort")
        done = complete_rollout(runtime, name=name, alias=alias, reason=reason, actor=actor, role=role, groups=groups)
        return _described(db.session.get(Rollout, rollout_id), done.previous_version)
    percent = plan.steps[step + 1]["percent"]
    end_read()
    step_rollout(name=name, alias=alias, at_step=step, percent=percent, actor=actor, reason=reason,
                 evidence={"skipped": True}, any_state=True, role=role, groups=groups)
    return get_rollout(name, alias)


def _checked_plan(plan: dict | None, model: RegisteredModel, primary: ModelVersion, canary: ArmSpec | None,
                  force: bool) -> Plan | None:
    """The plan checked against the canary it walks (its gates depend on the canary's task)."""
    if plan is None:
        return None
    if canary is None:
        raise InvalidInput("a plan walks a canary: give the canary's version", errors={"canary": ["missing"]})
    return checked_plan(plan, task=_admitted(model, primary, canary, CANARY, force)[0].task)


def _set_plan(rollout: Rollout, plan: Plan | None) -> None:
    """Start ``plan`` on ``rollout`` at its first step (or drop the plan it had: a person set the shares)."""
    existing = plan_of(rollout) if rollout.id is not None else None
    if plan is None:
        if existing is not None:
            db.session.delete(existing)
        return
    row = existing or RolloutPlan(rollout_id=rollout.id)
    row.steps, row.gates, row.on_success = plan.to_row()["steps"], plan.gates, plan.on_success
    row.step, row.state, row.detail, row.updated_at = 0, "running", "step 1 started", utcnow()
    _restart_step(row)
    if existing is None:
        db.session.add(row)


def _restart_step(plan: RolloutPlan) -> None:
    """The plan's step counts from now: the controller settles its baseline, looks, verdicts and figures anew."""
    plan.step_started_at = utcnow()
    plan.baseline, plan.looks, plan.verdicts, plan.figures = {}, {}, {}, None


def _end(rollout: Rollout, state: str, detail: str) -> None:
    """End ``rollout`` now, and its plan, if it has one still going, as ``state`` (promoted, aborted) for ``detail``."""
    rollout.ended_at = utcnow()
    plan = plan_of(rollout)
    if plan is not None and plan.state not in ("promoted", "aborted"):
        plan.state, plan.detail, plan.updated_at = state, detail, utcnow()


def _check_step(rollout: Rollout, at_step: int | None, any_state: bool = False) -> None:
    """Conflict unless the rollout's plan still runs at ``at_step`` (None: no check; a person acts)."""
    if at_step is None:
        return
    plan = plan_of(rollout)
    if plan is None or plan.step != at_step or (not any_state and plan.state != "running"):
        raise Conflict("the rollout's plan moved meanwhile (a person or another controller acted); nothing done")


def _described(rollout: Rollout, primary_version: int) -> RolloutState:
    state = describe(rollout, primary_version, summed(rollout.id))
    plan = plan_of(rollout)
    return replace(state, plan=plan_view(plan)) if plan is not None else state


def _record(model: RegisteredModel, rollout: Rollout, action: str, *, actor: str, reason: str, to_version: int,
            from_version: int | None = None, forced: bool = False, **extra) -> PromotionEvent:
    """Append a rollout's history event, in the caller's transaction: every rollout change is written here."""
    event = PromotionEvent(
        model_id=model.id,
        alias=rollout.alias,
        action=action,
        from_version=to_version if from_version is None else from_version,
        to_version=to_version,
        actor=actor,
        reason=reason or "",
        forced=forced,
        details={**settings(rollout), **extra},
    )
    db.session.add(event)
    model.updated_at = utcnow()
    db.session.flush()
    _announce(model, event)
    return event


def _announce(model: RegisteredModel, event: PromotionEvent) -> None:
    """The webhook event of a rollout change, in the same transaction; completing one also moves the alias."""
    data = {
        "model": model.name, "alias": event.alias, "action": event.action, "actor": event.actor,
        "reason": event.reason, "history_id": event.id, **(event.details or {}),
    }
    outbox.record(ANNOUNCED[event.action], data)
    if event.action == "rollout_promote":
        outbox.record_alias_moved(model.name, event)


def _checked_arms(canary: ArmSpec | None, shadow: ArmSpec | None, sticky_header: str | None) -> dict[str, ArmSpec]:
    """The requested arms by role, once the request as a whole makes sense (the alias name is checked already)."""
    arms = {role: spec for role, spec in ((CANARY, canary), (SHADOW, shadow)) if spec is not None}
    if not arms:
        raise InvalidInput("give a canary, a shadow or both", errors={"canary": ["missing"], "shadow": ["missing"]})
    for role, spec in arms.items():
        if not (math.isfinite(spec.percent) and 0 < spec.percent <= 100):
            raise InvalidInput(f"{role} percent must be above 0 and at most 100, not {spec.percent}",
                               errors={role: {"percent": ["must be in (0, 100]"]}})
    if sticky_header is not None and not HEADER_NAME.fullmatch(sticky_header):
        raise InvalidInput(f"sticky_header {sticky_header!r} is not a valid header name; use letters, digits and "
                           "'-' (e.g. X-User-Id)", errors={"sticky_header": ["not a valid header name"]})
    return arms


def _admitted(model: RegisteredModel, primary: ModelVersion, spec: ArmSpec, role: str,
              force: bool) -> tuple[ModelVersion, bool]:
    """The arm's version, checked as promote checks one, and whether ``force`` overrode a difference."""
    try:
        version = ready_version(model, spec.version)
    except VersionNotFound:
        raise InvalidInput(f"model {model.name!r} has no version {spec.version}; pick an existing version as {role}",
                           errors={role: {"version": ["unknown version"]}}) from None
    if version.id == primary.id:
        raise InvalidInput(f"version {spec.version} is the primary version already; pick another version as {role}",
                           errors={role: {"version": ["is the primary version"]}})
    problems = incompatibilities(primary, version)
    if problems and not force:
        raise InvalidInput(
            f"version {spec.version} is incompatible with version {primary.number} that the alias serves "
            f"({'; '.join(problems)}); send \"force\": true to use it as {role} anyway",
            errors={"signature": problems},
        )
    return version, bool(problems)


def _primary(model: RegisteredModel, alias: str) -> ModelVersion:
    current = find_alias(model, alias)
    if current is None:
        raise Conflict(f"alias {alias!r} of {model.name!r} does not exist; promote a version to it first")
    return current.version


def _active(model: RegisteredModel, alias: str) -> Rollout:
    rollout = active_rollout(model, alias)
    if rollout is None:
        raise RolloutNotFound(f"no rollout is running on alias {alias!r} of {model.name!r}")
    return rollout


def _new_rollout(model: RegisteredModel, alias: str, reason: str, actor: str) -> Rollout:
    rollout = Rollout(model_id=model.id, alias=alias, reason=reason or "", started_by=actor, started_at=utcnow())
    db.session.add(rollout)
    return rollout


def _apply(rollout: Rollout, sticky_header: str | None, reason: str) -> None:
    """Set the rollout's sticky header and reason (its arms are :func:`registry.aliases.answers.decide`'s)."""
    rollout.sticky_header = sticky_header
    rollout.reason = reason or rollout.reason
    rollout.changed_at = utcnow()
    db.session.flush()


def _wanted(rollout_id: int, admitted: dict, arms: dict[str, ArmSpec], sticky_header: str | None) -> dict:
    """The settings a rollout would have after applying the request (to spot a request that changes nothing)."""
    def arm(role):
        return {"version": admitted[role][0].number, "percent": arms[role].percent} if role in arms else None

    return {"rollout_id": rollout_id, "canary": arm(CANARY), "shadow": arm(SHADOW), "sticky_header": sticky_header}
