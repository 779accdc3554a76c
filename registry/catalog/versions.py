"""Use cases on model versions: upload, list, look at, download and archive."""
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Callable

from sqlalchemy import and_, or_, select

from registry import changes, entries
from registry.artifacts.safe_pickle import load_estimator
from registry.artifacts.signature import ModelDescription
from registry.artifacts.store import ArtifactStore
from registry.db import db, upsert_insert, write_transaction
from registry.errors import CallerGone, Conflict, InvalidInput
from registry.events import outbox
from registry.heap import give_back
from registry.lookups import find_model, find_version, rollouts_using
from registry.names import check_model_name
from registry.paging import Page, slice_page, sorted_by
from registry.inference.predictors import TreePredictor, predictor_for
from registry.serving.explain_bounds import ExplainBounds, verdict
from registry.serving.inputs import rows_from_records
from registry.tables import ModelVersion, RegisteredModel, utcnow

MAX_INPUT_EXAMPLE_ROWS = 100
WORDS = ("description", "tags", "intended_use", "limitations")  # what a version's PATCH may set besides classes


def upload_version(
    store: ArtifactStore, name: str, *, artifact: BinaryIO, digest: tuple[str, int], metadata: dict, actor: str,
    max_rows: int, max_model_bytes: int, max_features: int | None = None,
    caller_waiting: Callable[[], bool] = lambda: True, explain_bounds: ExplainBounds = ExplainBounds(),
) -> tuple[ModelVersion, bool]:
    """Register the file ``artifact`` (read from its start; ``digest`` is its sha256 and size, taken as
    it arrived) as the next version of model ``name`` (created on first upload).

    Returns the version and whether it is new: identical bytes already uploaded to this model
    give back the existing version, so CI retries are safe. The artifact is parsed safely and
    described before anything is stored; it is streamed to the store and verified there before
    its row is committed, so a crash leaves at most an unreferenced file (``artifacts gc``).
    ``max_model_bytes`` bounds what the artifact may unpack to (``MAX_MODEL_MB``), ``max_features``
    the columns the model may take (``MAX_FEATURES``); ``explain_bounds`` whether its rows can be explained
    (``explainable``, recorded with the reason and one row's cost). ``caller_waiting`` says whether the caller still waits
    for the answer: asked before the bytes are stored and again just before the version is committed, a
    caller who has gone (a client that gave up while a large file was parsed) is refused (``CallerGone``)
    and nothing is committed.
    """
    check_model_name(name)
    digest, size = digest
    description, example, explainable = _described(
        artifact, metadata, max_rows=max_rows, max_model_bytes=max_model_bytes, max_features=max_features,
        explain_bounds=explain_bounds,
    )
    give_back()  # what unpacking it took, else every worker that takes uploads keeps its own high-water mark
    _check_caller(caller_waiting)
    store.put_file(artifact, digest, size)
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
        version = _version_row(
            model, description, metadata, example=example, digest=digest, size=size, actor=actor
        )
        version.explainable, version.explainable_reason, version.explain_row_cost = explainable
        db.session.add(version)
        outbox.record("version.created", _event_data(name, version))
        _check_caller(caller_waiting)  # the last moment before the commit: a refusal rolls all of it back
    return version, True


def _check_caller(caller_waiting: Callable[[], bool]) -> None:
    if not caller_waiting():
        raise CallerGone("the caller closed its connection or its X-Request-Timeout passed before the version "
                         "was committed: nothing was; upload again (with a longer timeout)")


def _described(
    artifact: BinaryIO, metadata: dict, *, max_rows: int, max_model_bytes: int, max_features: int | None,
    explain_bounds: ExplainBounds,
) -> tuple:
    """What the upload holds (its signature …), its checked input example, and whether its rows can be explained
    (``explain_bounds.verdict``); the estimator itself is let go here, before the bytes travel to the store."""
    from registry.artifacts.loading import model_files, xgboost_files

    framework = model_files.framework_of(_head(artifact))
    if framework is not None:  # an XGBoost or LightGBM file, read by the registry itself
        form, names = model_files.read_model_file(framework, xgboost_files.read_upload(artifact, max_model_bytes),
                                                  metadata.get("classes"), max_features=max_features)
        xgboost_files.check_width(form, max_features)
        description = model_files.describe_model_file(framework, form, names=names,
                                                      given=metadata.get("feature_names"))
        return (description, _checked_input_example(metadata.get("input_example"), description.signature, max_rows),
                verdict(TreePredictor([], form), explain_bounds))
    loaded = load_estimator(artifact, max_bytes=max_model_bytes, max_features=max_features)
    from registry.artifacts.introspect import describe  # scikit-learn, loaded already by the unpickling

    description = describe(loaded.estimator, metadata.get("feature_names"), loaded.sklearn_version)
    return (description, _checked_input_example(metadata.get("input_example"), description.signature, max_rows),
            verdict(predictor_for(loaded.estimator), explain_bounds))


def _head(artifact: BinaryIO) -> bytes:
    artifact.seek(0)
    head = artifact.read(64)
    artifact.seek(0)
    return head


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


def update_version(name: str, number: int, edits: dict, *, actor: str, reason: str = "") -> ModelVersion:
    """Set a version's words (see :func:`set_words`) as ``actor``'s; what the upload measured stays as it was.
    Naming a boosted classifier's classes changes what its aliases answer: that is
    :func:`registry.aliases.class_names.edit_version`'s, under the aliases' policies."""
    with write_transaction():
        model = find_model(name, lock=True)
        version = find_version(model, number)
        set_words(version, edits, actor=actor, reason=reason)
        model.updated_at = utcnow()
    return version


def set_words(version: ModelVersion, edits: dict, *, actor: str, reason: str = "") -> None:
    """Set the words ``edits`` names: ``description``, ``tags``, its model card's ``intended_use`` and
    ``limitations`` (in the caller's write transaction); what differs is a ``card_update`` entry of the ledger,
    ``actor``'s with ``reason``."""
    differs = entries.changed(version, edits, WORDS)
    for field, value in differs.items():
        setattr(version, field, value)
    if differs:
        entries.record("card_update", actor=actor, reason=reason, details={"changed": differs},
                       model_id=version.model_id, version=version.number)


def archive_version(name: str, number: int, *, actor: str, reason: str = "") -> ModelVersion:
    """Archive (soft-delete) a version; a no-op when already archived; refused while aliased.

    Who archived it and why go to webhook subscribers with the ``version.archived`` event. This
    process refuses the version once the archive commits; the others when their watcher next refreshes.
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
        changes.record(changes.VersionRetired(name, number))
    return version


def _event_data(name: str, version: ModelVersion) -> dict:
    """What webhook receivers learn of a version."""
    return {
        "model": name, "version": version.number, "status": version.status, "kind": version.kind,
        "task": version.task, "estimator": version.estimator, "sha256": version.sha256,
        "metrics": version.metrics, "created_by": version.created_by,
    }


def _version_row(model: RegisteredModel, description: ModelDescription, metadata: dict, *, example: list | None,
                 digest: str, size: int, actor: str) -> ModelVersion:
    """The row of the model's next version: what the artifact is, what the uploader said of it."""
    return ModelVersion(
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
        intended_use=metadata.get("intended_use", ""),
        limitations=metadata.get("limitations", ""),
        input_example=example,
        sha256=digest,
        size_bytes=size,
        sklearn_version=description.sklearn_version,
        framework=description.framework,
        created_by=actor,
    )


def _lock_or_create_model(name: str) -> RegisteredModel:
    """The model row, created if absent, locked until the transaction ends."""
    now = utcnow()
    db.session.execute(
        upsert_insert(RegisteredModel)
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
        rows_from_records(example, signature, max_rows)
    except InvalidInput as exc:
        raise InvalidInput(f"input_example does not fit the model's signature: {exc.detail}") from None
    return example


def ready_numbers(name: str) -> list[int]:
    """The numbers of every non-archived version of a model, lowest first (however many there are)."""
    model = find_model(name)
    return list(db.session.execute(
        select(ModelVersion.number)
        .where(ModelVersion.model_id == model.id, ModelVersion.status == "ready")
        .order_by(ModelVersion.number)
    ).scalars())


@dataclass(frozen=True)
class Lifecycle:
    """A version's upload or archive, as the history timeline shows it beside the alias moves."""

    at: datetime
    action: str  # "upload" or "archive"
    version: int
    actor: str


def lifecycle(name: str, *, after: datetime | None = None, until: datetime | None = None) -> list[Lifecycle]:
    """The uploads and archives of a model's versions in ``(after, until]`` (open ends: every one), newest first."""
    model = find_model(name)

    def within(column):
        bounds = [column.isnot(None)] + ([column > after] if after else []) + ([column <= until] if until else [])
        return and_(*bounds)

    def inside(at: datetime | None) -> bool:
        return at is not None and (after is None or at > after) and (until is None or at <= until)

    found = db.session.scalars(select(ModelVersion).where(
        ModelVersion.model_id == model.id, or_(within(ModelVersion.created_at), within(ModelVersion.archived_at))))
    entries = []
    for version in found:
        if inside(version.created_at):
            entries.append(Lifecycle(version.created_at, "upload", version.number, version.created_by))
        if inside(version.archived_at):
            entries.append(Lifecycle(version.archived_at, "archive", version.number, ""))
    return sorted(entries, key=lambda entry: entry.at, reverse=True)
