"""Use cases on model versions: upload, list, look at, download and archive."""
import math

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from registry.artifacts.introspect import describe
from registry.artifacts.safe_pickle import load_estimator
from registry.artifacts.store import ArtifactStore
from registry.catalog.lookups import find_model, find_version, rollouts_using
from registry.catalog.paging import Page, slice_page
from registry.db import db, write_transaction
from registry.errors import Conflict, InvalidInput
from registry.events import outbox
from registry.names import check_model_name
from registry.serving.inputs import rows_from_json
from registry.serving.server import ModelServer
from registry.tables import ModelVersion, RegisteredModel, utcnow

SORT_FIELDS = ("version", "created_at")
MAX_INPUT_EXAMPLE_ROWS = 100


def upload_version(
    store: ArtifactStore, name: str, *, data: bytes, metadata: dict, actor: str, max_rows: int,
    max_model_bytes: int,
) -> tuple[ModelVersion, bool]:
    """Register ``data`` as the next version of model ``name`` (created on first upload).

    Returns the version and whether it is new: identical bytes already uploaded to this model
    give back the existing version, so CI retries are safe. The artifact is parsed safely and
    described before anything is stored; the file is in place before its row is committed.
    ``max_model_bytes`` bounds what the artifact may unpack to (``MAX_MODEL_MB``).
    """
    check_model_name(name)
    loaded = load_estimator(data, max_bytes=max_model_bytes)
    description = describe(loaded.estimator, metadata.get("feature_names"), loaded.sklearn_version)
    example = _checked_input_example(metadata.get("input_example"), description.signature, max_rows)
    digest = store.put(data)
    with write_transaction():
        model = _lock_or_create_model(name)
        existing = _version_by_sha(model, digest)
        if existing is not None:
            if existing.status == "archived":
                raise Conflict(
                    f"these bytes are version {existing.number} of {name!r}, which is archived; "
                    "upload a different artifact"
                )
            return existing, False
        model.last_version += 1
        model.updated_at = utcnow()
        version = ModelVersion(
            model_id=model.id,
            number=model.last_version,
            status="ready",
            kind=description.kind,
            task=description.task,
            estimator=description.estimator,
            steps=description.steps,
            signature=description.signature.to_dict(),
            metrics=metadata.get("metrics", {}),
            params=metadata.get("params", {}),
            tags=metadata.get("tags", {}),
            lineage=metadata.get("lineage", {}),
            description=metadata.get("description", ""),
            input_example=example,
            sha256=digest,
            size_bytes=len(data),
            sklearn_version=description.sklearn_version,
            created_by=actor,
        )
        db.session.add(version)
        outbox.record("version.created", _event_data(name, version))
    return version, True


def list_versions(name: str, *, sort: str | None, include_archived: bool, page: int, per_page: int) -> Page:
    """Versions of a model, newest first unless ``sort`` says otherwise (``-metrics.r2``)."""
    model = find_model(name)
    query = select(ModelVersion).where(ModelVersion.model_id == model.id)
    if not include_archived:
        query = query.where(ModelVersion.status == "ready")
    versions = list(db.session.execute(query).scalars().all())
    return slice_page(sorted_by(versions, sort or "-version"), page, per_page)


def get_version(name: str, ref: str) -> ModelVersion:
    """One version by number or alias."""
    return find_version(find_model(name), ref)


def read_artifact(store: ArtifactStore, name: str, ref: str) -> tuple[ModelVersion, bytes]:
    """The version and its stored bytes, verified against the recorded sha256."""
    version = get_version(name, ref)
    return version, store.get(version.sha256)


def update_version(name: str, number: int, changes: dict) -> ModelVersion:
    """Set a version's ``description`` and/or ``tags``; what the upload measured stays as it was."""
    with write_transaction():
        model = find_model(name, lock=True)
        version = find_version(model, number)
        for field in ("description", "tags"):
            if field in changes:
                setattr(version, field, changes[field])
        model.updated_at = utcnow()
    return version


def archive_version(server: ModelServer, name: str, number: int, *, actor: str, reason: str = "") -> ModelVersion:
    """Archive (soft-delete) a version; a no-op when already archived; refused while aliased.

    Who archived it and why go to webhook subscribers with the ``version.archived`` event. This
    process refuses the version at once; the others when their watcher next refreshes.
    """
    with write_transaction():
        model = find_model(name, lock=True)
        version = find_version(model, number)
        if version.status == "archived":
            return version
        aliases = version.alias_names
        if aliases:
            raise Conflict(
                f"version {number} of {name!r} is the target of alias(es) {', '.join(aliases)}; "
                "promote another version or roll back first"
            )
        rollouts = rollouts_using(version)
        if rollouts:
            raise Conflict(
                f"version {number} of {name!r} takes part in the rollout on alias(es) "
                f"{', '.join(sorted(r.alias for r in rollouts))}; complete or abort it first"
            )
        version.status = "archived"
        version.archived_at = utcnow()
        model.updated_at = utcnow()
        outbox.record("version.archived", {**_event_data(name, version), "actor": actor, "reason": reason})
    server.note_archived(name, number)
    return version


def _event_data(name: str, version: ModelVersion) -> dict:
    """What webhook receivers learn of a version."""
    return {
        "model": name, "version": version.number, "status": version.status, "kind": version.kind,
        "task": version.task, "estimator": version.estimator, "sha256": version.sha256,
        "metrics": version.metrics, "created_by": version.created_by,
    }


def _lock_or_create_model(name: str) -> RegisteredModel:
    """The model row, created if absent, locked until the transaction ends."""
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    db.session.execute(
        insert(RegisteredModel)
        .values(name=name, description="", tags={}, last_version=0, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return find_model(name, lock=True)


def _version_by_sha(model: RegisteredModel, digest: str) -> ModelVersion | None:
    return db.session.execute(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.sha256 == digest)
    ).scalar_one_or_none()


def _checked_input_example(example, signature, max_rows: int) -> list | None:
    """The input example if it fits the signature; it is what promote scores as a smoke test."""
    if example is None:
        return None
    if len(example) > MAX_INPUT_EXAMPLE_ROWS:
        raise InvalidInput(f"input_example has {len(example)} rows; give at most {MAX_INPUT_EXAMPLE_ROWS}")
    try:
        rows_from_json({"instances": example}, signature, max_rows)
    except InvalidInput as exc:
        raise InvalidInput(f"input_example does not fit the model's signature: {exc.detail}") from None
    return example


def sorted_by(versions: list, sort: str) -> list:
    """Sort by ``version``, ``created_at`` or ``metrics.<key>``; '-' for descending.

    Takes anything with ``number``, ``created_at`` and ``metrics`` (versions, evaluations).

    Versions without the sorted metric come last in either direction.
    """
    descending = sort.startswith("-")
    key = sort[1:] if sort[:1] in ("-", "+") else sort
    if key in SORT_FIELDS:
        attr = "number" if key == "version" else key
        return sorted(versions, key=lambda v: (getattr(v, attr), v.number), reverse=descending)
    if key.startswith("metrics.") and len(key) > len("metrics."):
        metric = key[len("metrics."):]
        having = [v for v in versions if _is_number(v.metrics.get(metric))]
        missing = [v for v in versions if not _is_number(v.metrics.get(metric))]
        having.sort(key=lambda v: (v.metrics[metric], v.number), reverse=descending)
        missing.sort(key=lambda v: v.number, reverse=True)
        return having + missing
    raise InvalidInput(
        f"unknown sort key {sort!r}: use version, created_at or metrics.<name>, with '-' for descending",
        errors={"sort": ["unknown sort key"]},
    )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
