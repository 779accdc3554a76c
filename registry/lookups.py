"""Finding models and versions by name and reference, the way every use case needs them."""
from sqlalchemy import func, select

from registry.db import db
from registry.errors import ModelNotFound, VersionNotFound
from registry.names import LATEST, MODEL_NAME, parse_ref
from registry.tables import Alias, ModelVersion, RegisteredModel


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
