"""Editing a version, its class names included: naming a boosted classifier's classes changes what the
aliases it answers give their callers (``0`` becomes ``"benign"``), so it passes each such alias's policy,
as a move does (:func:`registry.aliases.answers.decide`, action ``classes``), and is recorded in its history.
"""
from registry import changes
from registry.aliases.answers import Answer, Mover, decide
from registry.catalog.class_names import name_classes
from registry.catalog.versions import set_words
from registry.db import db, write_transaction
from registry.lookups import find_alias, find_model, find_version, rollouts_using
from registry.tables import ModelVersion, PromotionEvent, RegisteredModel, utcnow

ACTION = "classes"  # the history's action, and the change the policy judges


def edit_version(name: str, number: int, edits: dict, *, by: Mover, reason: str = "") -> ModelVersion:
    """Set version ``number``'s words (a ``card_update`` entry with ``reason`` where they differ) and, with ``classes``, name its classes (once: see
    :func:`registry.catalog.class_names.name_classes`), in one transaction.

    New names change what every alias the version answers (as its version or its rollout's canary) gives
    its callers: each such alias's policy must allow ``by`` (PolicyRefused, 409, nothing written), and each
    gets a ``classes`` entry in its history (one with no alias when the version answers none). Every process
    answers the names once its watcher has seen the change (within ``ALIAS_REFRESH_SECONDS``)."""
    with write_transaction():
        model = find_model(name, lock=True)
        version = find_version(model, number)
        set_words(version, edits, actor=by.actor, reason=reason)
        previous = (version.signature or {}).get("classes")
        if "classes" in edits and name_classes(version, edits["classes"]):
            aliases = answered_by(model, version)
            for alias in aliases:
                current = find_alias(model, alias)
                decide(model, alias, Answer(current.version if current is not None else None), action=ACTION, by=by)
            for alias in aliases or [None]:
                db.session.add(PromotionEvent(
                    model_id=model.id, alias=alias, action=ACTION, from_version=number, to_version=number,
                    actor=by.actor, reason=reason, forced=False,
                    details={"version": number, "classes": list(edits["classes"]), "previous": previous},
                ))
            changes.record(changes.ModelChanged(name))
        model.updated_at = utcnow()  # the change marker every process's watcher polls
    return version


def answered_by(model: RegisteredModel, version: ModelVersion) -> list[str]:
    """The aliases whose callers ``version`` answers: those it is the version of, and those whose rollout's
    canary it is (a shadow answers nobody)."""
    canaries = {rollout.alias for rollout in rollouts_using(version)
                if rollout.model_id == model.id and rollout.canary_version_id == version.id}
    return sorted(set(version.alias_names) | canaries)
