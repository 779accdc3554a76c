"""Use cases on registered models as a whole: list, look at, describe and tag."""
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select

from registry import entries
from registry.changes import ModelChanged, record
from registry.db import db, on_postgresql, write_transaction
from registry.lookups import find_model, latest_numbers
from registry.paging import Page, paginate, slice_page
from registry.tables import RegisteredModel, utcnow


@dataclass(frozen=True)
class ModelSummary:
    """A model as the API shows it."""

    name: str
    description: str
    tags: dict
    latest_version: int | None
    aliases: dict[str, int]
    version_count: int
    created_at: datetime
    updated_at: datetime
    prediction_log_sample: float | None = None  # its own share of requests logged; None: the default
    prediction_log_max_mb: float | None = None  # the most its log may hold, when less than its fair share
    prediction_log_explain: float | None = None  # the share of its logged answers explained; None: none


def list_models(page: int, per_page: int, *, readable: Callable[[str], bool] | None = None) -> Page:
    """Models ordered by name; with ``readable`` (a scoped token's test of a name: registry.access.scopes.holds),
    only the models it passes. The names are tested here, one by one, by the test each model's own routes make,
    never matched in SQL (SQLite's LIKE ignores case): a token lists exactly the models it may read."""
    query = select(RegisteredModel).order_by(_by_name())
    if readable is None:
        models = paginate(query, page, per_page)
    else:
        names = slice_page([name for name in db.session.scalars(select(RegisteredModel.name).order_by(_by_name()))
                            if readable(name)], page, per_page)
        models = replace(names, items=list(db.session.scalars(query.where(RegisteredModel.name.in_(names.items)))))
    latest = latest_numbers([m.id for m in models.items])
    return replace(models, items=[_summary(m, latest.get(m.id)) for m in models.items])


def get_model(name: str) -> ModelSummary:
    """One model, with its aliases and how many versions it has had."""
    model = find_model(name)
    return _summary(model, latest_numbers([model.id]).get(model.id))


def update_model(name: str, changes: dict, *, actor: str, reason: str = "") -> ModelSummary:
    """Set the model's ``description``, ``tags`` and/or ``prediction_log`` (``{"sample": share or None,
    "max_mb": MB or None, "explain": share or None}``, any of them), as ``actor``'s: what differs is a
    ``model_update`` entry of the ledger, with ``reason``."""
    with write_transaction():
        model = find_model(name, lock=True)
        differs = entries.changed(model, changes, ("description", "tags"))
        for field, value in differs.items():
            setattr(model, field, value)
        if "prediction_log" in changes:
            log_changes = changes["prediction_log"]
            before = (model.prediction_log_sample, model.prediction_log_max_mb, model.prediction_log_explain)
            if "sample" in log_changes:
                model.prediction_log_sample = log_changes["sample"]
            if "max_mb" in log_changes:
                model.prediction_log_max_mb = log_changes["max_mb"]
            if "explain" in log_changes:
                model.prediction_log_explain = log_changes["explain"] or None  # 0 and null alike: none
            if (model.prediction_log_sample, model.prediction_log_max_mb, model.prediction_log_explain) != before:
                differs["prediction_log"] = log_changes
            record(ModelChanged(name))  # every worker of every replica reads the share again
        if differs:
            entries.record("model_update", actor=actor, reason=reason, details={"changed": differs},
                           model_id=model.id)
        model.updated_at = utcnow()
    return get_model(name)


def _by_name():
    """Names in code-point order on every backend (SQLite's default; PostgreSQL's locale may differ)."""
    if on_postgresql():
        return RegisteredModel.name.collate("C")
    return RegisteredModel.name


def _summary(model: RegisteredModel, latest: int | None) -> ModelSummary:
    return ModelSummary(
        name=model.name,
        description=model.description,
        tags=model.tags,
        latest_version=latest,
        aliases=model.alias_map,
        version_count=model.last_version,
        created_at=model.created_at,
        updated_at=model.updated_at,
        prediction_log_sample=model.prediction_log_sample,
        prediction_log_max_mb=model.prediction_log_max_mb,
        prediction_log_explain=model.prediction_log_explain,
    )
