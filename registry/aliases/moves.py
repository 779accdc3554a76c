"""Use cases that move aliases — promote, rollback, delete — and read where they point and pointed.

Every move locks the model (its row on PostgreSQL, the write lock on SQLite), so moves of one
model happen one at a time and the history is a consistent chain. A version is admitted (loaded
and scored) before an alias may point at it; the runtime serves the move once it commits.
"""
from dataclasses import dataclass

from sqlalchemy import select

from registry import changes
from registry.aliases.admission import admit, incompatibilities, ready_version
from registry.aliases.answers import Answer, Mover, decide
from registry.aliases.rollouts import end_on_move
from registry.db import db, write_transaction
from registry.errors import AliasNotFound, Conflict, InvalidInput
from registry.events import outbox
from registry.facts import VersionInfo
from registry.governance.guard import Vote
from registry.governance.policies import BREAK_GLASS
from registry.lookups import active_rollout, find_alias, find_model
from registry.names import ALIAS_NAME, LATEST, check_alias_name
from registry.paging import Page, paginate
from registry.serving.runtime import Runtime
from registry.tables import PromotionEvent, RegisteredModel, utcnow

MAX_ROLLBACK_RETRIES = 3
# Moves a rollback can undo: promotes (broken glass too), and completed rollouts (which promote their canary).
UNDOABLE = ("promote", BREAK_GLASS, "rollout_promote")


@dataclass(frozen=True)
class Move:
    """The outcome of a promote or rollback."""

    model: str
    alias: str
    version: int
    previous_version: int | None
    event_id: int | None  # None when nothing moved (promoting the current version)


def list_aliases(name: str) -> dict[str, int]:
    """``{alias: version}`` of a model."""
    return find_model(name).alias_map


def history(name: str, *, alias: str | None, page: int, per_page: int) -> Page:
    """Promotion events of a model, newest first, optionally of one alias."""
    model = find_model(name)
    query = select(PromotionEvent).where(PromotionEvent.model_id == model.id)
    if alias:
        query = query.where(PromotionEvent.alias == alias)
    return paginate(query.order_by(PromotionEvent.id.desc()), page, per_page)


def promote(runtime: Runtime, name: str, *, number: int, alias: str, reason: str, force: bool, actor: str,
            role: str | None, vote: Vote | None = None, groups: tuple[str, ...] = ()) -> Move:
    """Point ``alias`` at version ``number`` once it has loaded and scored its input example, if the
    alias's policy allows ``actor`` (of ``role``; None: the registry's controller; a signed-in person in
    ``groups``) to.

    ``vote``: the final approval of a request, which this move completes for its requester (``actor``)."""
    return _promote(runtime, name, number=number, alias=alias, reason=reason, force=force, actor=actor, role=role,
                    vote=vote, action="promote", groups=groups)


def break_glass(runtime: Runtime, name: str, *, number: int, alias: str, reason: str, force: bool, actor: str,
                role: str) -> Move:
    """An admin's promote past the alias's policy (its movers, freezes, evidence and approvals), for an
    emergency: the reason is mandatory, and the move is loud (``break_glass`` in the history, an
    ``alias.break_glass`` webhook event, a banner on the dashboard). The admin and the reason are checked
    where every other move's policy is, in :func:`registry.aliases.answers.decide`."""
    return _promote(runtime, name, number=number, alias=alias, reason=reason, force=force, actor=actor, role=role,
                    vote=None, action=BREAK_GLASS)


def _promote(runtime: Runtime, name: str, *, number: int, alias: str, reason: str, force: bool, actor: str,
             role: str | None, vote: Vote | None, action: str, groups: tuple[str, ...] = ()) -> Move:
    check_alias_name(alias)
    admit(runtime.models, ready_version(find_model(name), number))
    with write_transaction():
        model = find_model(name, lock=True)
        version = ready_version(model, number)
        current = find_alias(model, alias)
        problems = incompatibilities(current.version, version) if current is not None else []
        previous = current.version.number if current is not None else None
        if previous == number and vote is None and action != BREAK_GLASS:
            return Move(name, alias, number, number, None)
        sanction = decide(model, alias, Answer(version), action=action, by=Mover(actor, role, groups, vote),
                          reason=reason, incompatible=problems)
        if previous == number:  # nothing moves (a final approval closes its request)
            return Move(name, alias, number, number, None)
        if problems and not force:  # after the policy's refusal, which says more; the transaction undoes the move
            raise InvalidInput(
                f"version {number} is incompatible with version {previous} that {alias!r} serves "
                f"({'; '.join(problems)}); send \"force\": true to promote anyway",
                errors={"signature": problems},
            )
        end_on_move(model, alias, action=action, actor=actor)
        # "forced" records an override, so only when there was something to override
        event = _record(model, alias, previous, version, action, actor, reason, forced=bool(problems),
                        details=sanction.details if sanction is not None else None)
        if sanction is not None:
            sanction.settle(event)
        if action == BREAK_GLASS:
            outbox.record("alias.break_glass", {
                "model": name, "alias": alias, "from_version": event.from_version, "to_version": number,
                "actor": actor, "reason": reason, "history_id": event.id,
            })
    return Move(name, alias, number, event.from_version, event.id)


def rollback(runtime: Runtime, name: str, *, alias: str, to_version: int | None, reason: str, actor: str,
             role: str | None, groups: tuple[str, ...] = ()) -> Move:
    """Undo the alias's latest promote not undone yet, or jump back to ``to_version``.

    The target is loaded before the alias moves; if another move changed the target meanwhile,
    the target is worked out again.
    """
    check_alias_name(alias)
    for _ in range(MAX_ROLLBACK_RETRIES):
        model = find_model(name)
        target, _ = _rollback_plan(model, alias, to_version)
        admit(runtime.models, ready_version(model, target), refused_as="rolled back to")
        with write_transaction():
            model = find_model(name, lock=True)
            planned, undone = _rollback_plan(model, alias, to_version)
            if planned != target:
                continue
            previous = find_alias(model, alias).version.number
            version = ready_version(model, target)
            decide(model, alias, Answer(version), action="rollback", by=Mover(actor, role, groups))
            end_on_move(model, alias, action="rollback", actor=actor)
            event = _record(model, alias, previous, version, "rollback", actor, reason, reverts=undone)
        return Move(name, alias, target, event.from_version, event.id)
    raise Conflict(f"alias {alias!r} of {name!r} kept moving during the rollback; try again")


def delete_alias(name: str, alias: str, *, reason: str, actor: str, role: str | None) -> PromotionEvent:
    """Remove ``alias`` and record it (``action: "delete"``, ``to_version`` null).

    What the alias pointed at before the delete is no longer rollback's to undo: a rollback
    after a delete is refused until a promote sets the alias again.
    """
    if alias == LATEST:
        raise InvalidInput("'latest' is computed (the highest non-archived version) and cannot be deleted")
    with write_transaction():
        model = find_model(name, lock=True)
        current = find_alias(model, alias) if ALIAS_NAME.fullmatch(alias) else None
        if current is None:
            raise AliasNotFound(f"model {name!r} has no alias {alias!r}")
        if active_rollout(model, alias) is not None:
            raise Conflict(
                f"a rollout is running on alias {alias!r} of {name!r}; complete or abort it before deleting the alias"
            )
        previous = current.version.number
        decide(model, alias, Answer(None), action="delete", by=Mover(actor, role))
        event = PromotionEvent(
            model_id=model.id, alias=alias, action="delete", from_version=previous,
            to_version=None, actor=actor, reason=reason or "",
        )
        db.session.add(event)
        model.updated_at = utcnow()
        db.session.flush()
        outbox.record_alias_moved(model.name, event)
        changes.record(changes.AliasDeleted(name, alias))
    return event


def _rollback_plan(model: RegisteredModel, alias: str, to_version: int | None) -> tuple[int, PromotionEvent]:
    """The version to go back to and the oldest promote that going there undoes."""
    current = find_alias(model, alias)
    if current is None:
        raise Conflict(f"alias {alias!r} of {model.name!r} is not set, so there is nothing to roll back")
    if to_version == current.version.number:
        raise Conflict(f"alias {alias!r} of {model.name!r} already points at version {to_version}")
    stack = _undo_stack(model, alias)
    if to_version is None:
        if not stack or stack[-1].from_version is None:
            raise Conflict(f"alias {alias!r} of {model.name!r} has no earlier version to roll back to")
        return stack[-1].from_version, stack[-1]
    for event in reversed(stack):
        if event.from_version == to_version:
            return to_version, event
    reachable = _reachable(stack, current.version.number)
    raise Conflict(
        f"alias {alias!r} of {model.name!r} cannot roll back to version {to_version}: "
        f"it can go back to {', '.join(map(str, reachable)) or 'no version'}"
    )


def rollback_targets(name: str, alias: str) -> list[int]:
    """The versions a rollback of ``alias`` may jump back to (never the one it serves), in order."""
    model = find_model(name)
    current = find_alias(model, alias)
    return _reachable(_undo_stack(model, alias), current.version.number) if current is not None else []


def _reachable(stack: list[PromotionEvent], current: int) -> list[int]:
    return sorted({event.from_version for event in stack if event.from_version not in (None, current)})


def _undo_stack(model: RegisteredModel, alias: str) -> list[PromotionEvent]:
    """The alias's promotes that are not undone yet, oldest first."""
    events = db.session.execute(
        select(PromotionEvent)
        .where(PromotionEvent.model_id == model.id, PromotionEvent.alias == alias)
        .order_by(PromotionEvent.id)
    ).scalars()
    stack: list[PromotionEvent] = []
    for event in events:
        if event.action in UNDOABLE:
            stack.append(event)
        elif event.action == "rollback":
            stack = [e for e in stack if e.id < event.reverts_event_id]
        elif event.action == "delete":
            stack = []  # a deleted alias starts afresh: nothing before the delete is undone into
    return stack


def _record(model, alias, previous, version, action, actor, reason, forced=False, reverts=None,
            details=None) -> PromotionEvent:
    """Append the event of the alias's move from version ``previous`` to ``version`` (made by
    :func:`registry.aliases.answers.decide`), in the caller's transaction."""
    event = PromotionEvent(
        model_id=model.id,
        alias=alias,
        action=action,
        from_version=previous,
        to_version=version.number,
        reverts_event_id=reverts.id if reverts is not None else None,
        actor=actor,
        reason=reason or "",
        forced=forced,
        details=details,
    )
    db.session.add(event)
    model.updated_at = utcnow()
    db.session.flush()
    outbox.record_alias_moved(model.name, event)
    changes.record(changes.AliasServes(model.name, alias, VersionInfo.of(version)))
    return event
