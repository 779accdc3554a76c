"""Use cases of batch runs: record a finished scoring job against the version that scored it, and read them.

A job resolves its reference once, when it is planned, so a run always names one version even when
it was asked for through an alias (kept in ``alias``). Runs are the history of a version's offline
traffic: the newest ``KEPT_PER_VERSION`` of each version are kept, older ones are deleted when a
new one is recorded (registry/retention.py).
"""
from datetime import datetime, timezone

from sqlalchemy import delete, select

from registry.batch.tables import BatchRun
from registry.db import db, write_transaction
from registry.errors import InvalidInput, VersionArchived
from registry.events import outbox
from registry.lookups import find_model, find_version
from registry.names import check_alias_name
from registry.paging import Page, paginate
from registry.tables import ModelVersion

KEPT_PER_VERSION = 1000


def record_batch_run(
    name: str, number: int, *, alias: str | None, engine: str, inputs: list[str], outputs: list[str], rows: int,
    status: str, detail: str, started_at: datetime, finished_at: datetime, actor: str,
) -> BatchRun:
    """Record a finished batch run of version ``number`` and announce it (``batch_run.recorded``).

    An archived version cannot have scored a job that succeeded: it was archived before the job was planned
    or while it scored, and either way its outputs are not to be used (VersionArchived, 410). Its failed
    runs are recorded, so that the history says why a job ended. The model is locked as archiving locks it,
    so a run and an archive of its version are recorded in one order or the other, never both succeeded.
    """
    if alias is not None:
        check_alias_name(alias)
    if finished_at < started_at:
        raise InvalidInput("finished_at is before started_at; send the times the job started and ended",
                           errors={"finished_at": ["must not be before started_at"]})
    with write_transaction():
        version = find_version(find_model(name, lock=True), number)
        if status == "succeeded" and version.status == "archived":
            raise VersionArchived(f"version {number} of {name!r} is archived: a job scored by it cannot be recorded "
                                  "as succeeded; record it as failed (outputs: []) and score with a ready version")
        run = BatchRun(
            version_id=version.id, alias=alias, engine=engine, inputs=inputs, outputs=outputs, rows=rows,
            status=status, detail=detail or "", started_at=started_at, finished_at=finished_at, created_by=actor,
        )
        db.session.add(run)
        db.session.flush()
        _keep_newest(version.id)
        outbox.record("batch_run.recorded", {
            "model": name, "version": number, "batch_run_id": run.id, "alias": alias, "engine": engine,
            "inputs": inputs, "outputs": outputs, "rows": rows, "status": status, "detail": run.detail,
            "started_at": _iso(started_at), "finished_at": _iso(finished_at), "actor": actor,
        })
    return run


def version_batch_runs(name: str, ref: str, *, page: int, per_page: int) -> Page:
    """The batch runs of one version (by number or alias), newest first."""
    version = find_version(find_model(name), ref)
    query = select(BatchRun).where(BatchRun.version_id == version.id).order_by(BatchRun.id.desc())
    return paginate(query, page, per_page)


def model_batch_runs(
    name: str, *, after: datetime | None = None, until: datetime | None = None, limit: int = 500,
) -> list[BatchRun]:
    """The newest ``limit`` batch runs of every version of ``name`` that finished in ``(after, until]``, newest first."""
    model = find_model(name)
    query = (select(BatchRun).join(ModelVersion, ModelVersion.id == BatchRun.version_id)
             .where(ModelVersion.model_id == model.id).order_by(BatchRun.finished_at.desc(), BatchRun.id.desc()))
    if after is not None:
        query = query.where(BatchRun.finished_at > after)
    if until is not None:
        query = query.where(BatchRun.finished_at <= until)
    return list(db.session.scalars(query.limit(limit)))


def _keep_newest(version_id: int) -> None:
    oldest_kept = db.session.scalars(
        select(BatchRun.id).where(BatchRun.version_id == version_id)
        .order_by(BatchRun.id.desc()).offset(KEPT_PER_VERSION - 1).limit(1)
    ).first()
    if oldest_kept is not None:
        db.session.execute(delete(BatchRun).where(BatchRun.version_id == version_id, BatchRun.id < oldest_kept))


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
