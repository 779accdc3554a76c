"""Finding models, versions, aliases and rollouts by name and reference, the way every use case needs them."""
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from registry.db import db
from registry.errors import ModelNotFound, VersionNotFound
from registry.names import LATEST, MODEL_NAME, parse_ref
from registry.tables import Alias, ModelVersion, PromotionEvent, RegisteredModel, Rollout


def find_model(name: str, *, lock: bool = False) -> RegisteredModel:
    """The model called ``name``; ``lock`` takes its row lock so writers to it queue up."""
    if not MODEL_NAME.fullmatch(name):
        # No model can have such a name; and PostgreSQL refuses to even compare text holding NUL.
        raise ModelNotFound(f"model {name!r} does not exist")
    query = select(RegisteredModel).where(RegisteredModel.name == name)
    if lock:
        query = query.with_for_update()
    model = db.session.execute(query).scalar_one_or_none()
    if model is None:
        raise ModelNotFound(f"model {name!r} does not exist")
    return model


def find_version(model: RegisteredModel, ref: str | int) -> ModelVersion:
    """The version ``ref`` (a number, an alias or ``latest``) of ``model``, archived or not."""
    target = parse_ref(ref) if isinstance(ref, str) else ref
    if isinstance(target, int):
        version = _version_by_number(model, target)
        if version is None:
            raise VersionNotFound(f"model {model.name!r} has no version {target}")
        return version
    if target == LATEST:
        version = latest_version(model)
        if version is None:
            raise VersionNotFound(f"model {model.name!r} has no ready version, so no 'latest'")
        return version
    alias = find_alias(model, target)
    if alias is None:
        raise VersionNotFound(f"model {model.name!r} has no alias {target!r}")
    return alias.version


def find_alias(model: RegisteredModel, name: str) -> Alias | None:
    """The alias row ``name`` of ``model``, if set."""
    return db.session.execute(
        select(Alias).where(Alias.model_id == model.id, Alias.name == name)
    ).scalar_one_or_none()


def latest_version(model: RegisteredModel) -> ModelVersion | None:
    """The highest non-archived version of ``model``."""
    return db.session.execute(
        select(ModelVersion)
        .where(ModelVersion.model_id == model.id, ModelVersion.status == "ready")
        .order_by(ModelVersion.number.desc())
        .limit(1)
    ).scalar_one_or_none()


def latest_numbers(model_ids: list[int]) -> dict[int, int]:
    """For each model id, the number of its highest non-archived version (absent when none)."""
    if not model_ids:
        return {}
    rows = db.session.execute(
        select(ModelVersion.model_id, func.max(ModelVersion.number))
        .where(ModelVersion.model_id.in_(model_ids), ModelVersion.status == "ready")
        .group_by(ModelVersion.model_id)
    )
    return dict(rows.all())


def _version_by_number(model: RegisteredModel, number: int) -> ModelVersion | None:
    return db.session.execute(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.number == number)
    ).scalar_one_or_none()


# ---- what the serving snapshot is built from (read by every process's alias watcher) ---------


def change_marker() -> tuple:
    """What changes whenever an alias moves, a rollout changes, a version is uploaded or archived, or
    a model's own settings change (such as the share of its answers logged).

    Every rollout start, change, completion and abort writes a promotion event, so the newest
    event id covers rollouts as well as moves; every change of a model sets its ``updated_at``.
    """
    return tuple(db.session.execute(
        select(
            select(func.max(PromotionEvent.id)).scalar_subquery(),
            select(func.max(RegisteredModel.updated_at)).scalar_subquery(),
            select(func.max(ModelVersion.id)).scalar_subquery(),
            select(func.count()).select_from(ModelVersion).where(ModelVersion.status == "archived").scalar_subquery(),
        )
    ).one())


def alias_targets() -> list[tuple[str, str, ModelVersion]]:
    """``(model name, alias, version)`` for every alias of every model."""
    return list(db.session.execute(
        select(RegisteredModel.name, Alias.name, ModelVersion)
        .join(Alias, Alias.model_id == RegisteredModel.id)
        .join(ModelVersion, ModelVersion.id == Alias.version_id)
    ).all())


def latest_of(name: str) -> ModelVersion | None:
    """The highest non-archived version of the model called ``name``."""
    highest = (
        select(func.max(ModelVersion.number))
        .join(RegisteredModel)
        .where(RegisteredModel.name == name, ModelVersion.status == "ready")
        .scalar_subquery()
    )
    return db.session.execute(
        select(ModelVersion).join(RegisteredModel).where(RegisteredModel.name == name, ModelVersion.number == highest)
    ).scalar_one_or_none()


def archived_versions() -> frozenset[tuple[str, int]]:
    """``(model name, version number)`` of every archived version."""
    rows = db.session.execute(
        select(RegisteredModel.name, ModelVersion.number)
        .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
        .where(ModelVersion.status == "archived")
    ).all()
    return frozenset((name, number) for name, number in rows)


def active_rollouts() -> list[Rollout]:
    """Every rollout that has not ended, of every model."""
    return list(db.session.execute(select(Rollout).where(Rollout.ended_at.is_(None))).scalars())


def active_rollout(model: RegisteredModel, alias: str) -> Rollout | None:
    """The rollout running on ``alias`` of ``model``, if any."""
    return db.session.execute(
        select(Rollout).where(Rollout.model_id == model.id, Rollout.alias == alias, Rollout.ended_at.is_(None))
    ).scalar_one_or_none()


def rollouts_using(version: ModelVersion) -> list[Rollout]:
    """Active rollouts whose canary or shadow is ``version``."""
    return list(db.session.execute(
        select(Rollout).where(
            Rollout.ended_at.is_(None),
            (Rollout.canary_version_id == version.id) | (Rollout.shadow_version_id == version.id),
        )
    ).scalars())


def served_digests() -> set[str]:
    """The sha256 of every version an alias (``latest`` included) or a running rollout serves."""
    aliased = select(ModelVersion.sha256).join(Alias, Alias.version_id == ModelVersion.id)
    arms = select(ModelVersion.sha256).join(
        Rollout, (Rollout.canary_version_id == ModelVersion.id) | (Rollout.shadow_version_id == ModelVersion.id)
    ).where(Rollout.ended_at.is_(None))
    highest = (
        select(ModelVersion.model_id, func.max(ModelVersion.number).label("number"))
        .where(ModelVersion.status == "ready")
        .group_by(ModelVersion.model_id)
        .subquery()
    )
    latest = select(ModelVersion.sha256).join(
        highest, (highest.c.model_id == ModelVersion.model_id) & (highest.c.number == ModelVersion.number)
    )
    return set(db.session.execute(aliased.union(arms, latest)).scalars())


def served_versions() -> list[tuple[str, int]]:
    """(model, number) of every version an alias or a running rollout's canary or shadow serves."""
    aliased = (select(RegisteredModel.name, ModelVersion.number)
               .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
               .join(Alias, Alias.version_id == ModelVersion.id))
    arms = (select(RegisteredModel.name, ModelVersion.number)
            .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
            .join(Rollout, (Rollout.canary_version_id == ModelVersion.id) | (Rollout.shadow_version_id == ModelVersion.id))
            .where(Rollout.ended_at.is_(None)))
    return sorted(tuple(row) for row in db.session.execute(aliased.union(arms)).all())


def running_canaries(name: str | None = None) -> list[tuple[str, str, int, int]]:
    """(model, alias, primary version, canary version) of every running rollout with a canary (of ``name``'s
    rollouts only, when given), by model and alias."""
    primary, canary = aliased(ModelVersion), aliased(ModelVersion)
    query = (select(RegisteredModel.name, Rollout.alias, primary.number, canary.number)
             .join(RegisteredModel, RegisteredModel.id == Rollout.model_id)
             .join(canary, canary.id == Rollout.canary_version_id)
             .join(Alias, (Alias.model_id == Rollout.model_id) & (Alias.name == Rollout.alias))
             .join(primary, primary.id == Alias.version_id)
             .where(Rollout.ended_at.is_(None)))
    if name is not None:
        query = query.where(RegisteredModel.name == name)
    return sorted(tuple(row) for row in db.session.execute(query).all())


def signed_classes(keys: set[tuple[str, int]]) -> dict[tuple[str, int], list | None]:
    """The classes the signature of each version ``keys`` names (``(model, number)``) says now."""
    if not keys:
        return {}
    names = {name for name, _ in keys}
    rows = db.session.execute(
        select(RegisteredModel.name, ModelVersion.number, ModelVersion.signature)
        .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
        .where(RegisteredModel.name.in_(names), ModelVersion.number.in_({number for _, number in keys}))
    ).all()
    return {(name, number): (signature or {}).get("classes") for name, number, signature in rows
            if (name, number) in keys}
