"""Evaluations: scores of versions on named datasets, so versions scored on the same rows compare fairly."""
from dataclasses import dataclass

from sqlalchemy import distinct, func, select

from registry.db import db, write_transaction
from registry.errors import VersionArchived
from registry.lookups import find_model, find_version
from registry.paging import Page, paginate, slice_page, sorted_by
from registry.tables import Evaluation, ModelVersion


@dataclass(frozen=True)
class EvaluatedDataset:
    """A dataset some versions of a model were scored on."""

    name: str
    sha256: str
    versions: int


def record_evaluation(
    name: str, number: int, *, dataset_name: str, dataset_sha256: str, rows: int, metrics: dict, note: str, actor: str
) -> tuple[Evaluation, bool]:
    """Store a score of version ``number`` on a dataset, and whether it is new: the same score as the
    version's newest on that dataset (name, rows, metrics and note alike) is that one, not a second
    row, so retries and repeated retrains record nothing twice. An archived version is refused (410)."""
    with write_transaction():
        version = find_version(find_model(name), number)
        if version.status == "archived":
            raise VersionArchived(f"version {number} of {name!r} is archived; evaluate a ready version")
        newest = db.session.scalars(
            select(Evaluation).where(Evaluation.version_id == version.id,
                                     Evaluation.dataset_sha256 == dataset_sha256.lower())
            .order_by(Evaluation.id.desc()).limit(1)
        ).first()
        if newest is not None and (newest.dataset_name, newest.rows, newest.metrics, newest.note) == (
                dataset_name, rows, metrics, note or ""):
            return newest, False
        evaluation = Evaluation(
            version_id=version.id,
            dataset_name=dataset_name,
            dataset_sha256=dataset_sha256.lower(),
            rows=rows,
            metrics=metrics,
            note=note or "",
            created_by=actor,
        )
        db.session.add(evaluation)
        db.session.flush()
    return evaluation, True


def version_evaluations(name: str, ref: str, *, page: int, per_page: int) -> Page:
    """The evaluations of one version (by number or alias), newest first."""
    version = find_version(find_model(name), ref)
    query = select(Evaluation).where(Evaluation.version_id == version.id).order_by(Evaluation.id.desc())
    return paginate(query, page, per_page)


def dataset_evaluations(
    name: str, dataset_sha256: str, *, sort: str | None, include_archived: bool, page: int, per_page: int
) -> Page:
    """Every version of ``name`` scored on a dataset, each with its newest score there.

    Sorted like the version list: ``-version`` unless ``sort`` says otherwise (``-metrics.r2``),
    versions without the sorted metric last.
    """
    model = find_model(name)
    query = (
        select(Evaluation)
        .join(ModelVersion, ModelVersion.id == Evaluation.version_id)
        .where(ModelVersion.model_id == model.id, Evaluation.dataset_sha256 == dataset_sha256.lower())
        .order_by(Evaluation.id.desc())
    )
    if not include_archived:
        query = query.where(ModelVersion.status == "ready")
    newest: dict[int, Evaluation] = {}
    for evaluation in db.session.execute(query).scalars():
        newest.setdefault(evaluation.version_id, evaluation)
    return slice_page(sorted_by(list(newest.values()), sort or "-version"), page, per_page)


def evaluated_datasets(name: str) -> list[EvaluatedDataset]:
    """The datasets the versions of ``name`` were scored on, the most recently used first."""
    model = find_model(name)
    rows = db.session.execute(
        select(Evaluation.dataset_sha256, func.max(Evaluation.dataset_name), func.count(distinct(Evaluation.version_id)))
        .join(ModelVersion, ModelVersion.id == Evaluation.version_id)
        .where(ModelVersion.model_id == model.id)
        .group_by(Evaluation.dataset_sha256)
        .order_by(func.max(Evaluation.id).desc())
    ).all()
    return [EvaluatedDataset(dataset_name, sha256, count) for sha256, dataset_name, count in rows]
