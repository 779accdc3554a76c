"""The domain objects of one app (its artifact store and its serving runtime), built from its
config, and how the changes its use cases commit reach that runtime."""
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy.engine import make_url

from api import lifecycle
from api.settings import settings_of
from config import MB, Settings
from registry import lookups
from registry.artifacts.s3_store import S3Settings
from registry.artifacts.store import ArtifactStore
from registry.artifacts.store_root import UnknownStore, open_store
from registry.changes import committed
from registry.integrity.scrub import damaged_digests
from registry.db import end_read
from registry.monitoring.explain_references import ExplainReferences
from registry.monitoring.log_settings import LogSettings
from registry.monitoring.prediction_log import PredictionLog
from registry.serving.admission import AdmissionBounds
from registry.serving.data_plane import DataPlane
from registry.serving.explain_bounds import ExplainBounds
from registry.serving.loader import ArtifactLoader
from registry.serving.notifications import ChangeListener
from registry.serving.runtime import Runtime, build_runtime
from registry.artifacts.served_forms import ServedForms

EXTENSION = "model_registry"
# How long a stopping worker waits for its shadow runs, then for its prediction log's writer.
STOP_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Domain:
    """What one app instance stores and serves with."""

    store: ArtifactStore
    runtime: Runtime
    forms: ServedForms  # this machine's served forms, which its loader makes and maps
    prediction_log: PredictionLog
    data_plane: DataPlane  # where every prediction is answered
    explain_references: ExplainReferences  # the linear versions' reference means, read on first use


def init_app(app: Flask) -> None:
    """Build the app's store and runtime; its runtime serves what the app commits, once it commits."""
    config, settings = app.config, settings_of(app)
    serving, log = settings.serving, settings.prediction_log
    store = _store(app)
    forms = ServedForms(
        settings.storage.cache_dir / "forms", budget_bytes=settings.storage.cache_bytes,
        serving=_serving_digests(app),
        key=lambda: (config.get("SECRET_KEY") or "").encode(),  # read at first use: the dashboard sets its default
    )
    explain_references = ExplainReferences(app.app_context)
    runtime = build_runtime(
        ArtifactLoader(store, max_model_bytes=settings.limits.max_model_bytes, forms=forms),
        memory_budget_bytes=serving.model_memory_bytes,
        refresh_seconds=serving.alias_refresh_seconds,
        session_scope=app.app_context,
        explain_bounds=explain_bounds(settings),
        admission=AdmissionBounds.of(per_model=serving.max_in_flight_per_model, per_worker=serving.max_in_flight,
                                     wait_seconds=serving.admission_wait_seconds),
        explain_reference=explain_references,
        low_priority_from_walks=serving.low_priority_from_walks,
        low_priority_nice=serving.low_priority_nice,
    )
    log_settings = LogSettings(default_sample=log.sample, retention_seconds=log.retention_seconds,
                               capacity=log.queue, max_mb=log.max_bytes / MB, min_free_mb=log.min_free_bytes / MB,
                               database_url=settings.storage.database_url, export=bool(log.export),
                               explain_bounds=runtime.explain_bounds)
    prediction_log = PredictionLog(log_settings, session_scope=app.app_context,
                                   draw_key=(config.get("SECRET_KEY") or "").encode(),
                                   explain_reference=explain_references)
    runtime.shadows.observe(prediction_log.log_shadow)
    data_plane = DataPlane(runtime, log=prediction_log)
    app.extensions[EXTENSION] = Domain(store, runtime, forms, prediction_log, data_plane, explain_references)
    committed.connect(_serve_committed)  # once per process: connecting again changes nothing
    if serving.watch_aliases:
        url = make_url(settings.storage.database_url)
        if url.get_backend_name() == "postgresql":
            conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
            runtime.models.listen(ChangeListener(conninfo))
        prediction_log.follow(runtime.models.observe_changes)
        runtime.models.observe_changes(explain_references.forget)
        lifecycle.of(app).add("alias watcher", start=runtime.models.start)
    lifecycle.of(app).add("serving", start=lambda: start_in_worker(app), stop=lambda: stop_in_worker(app))


def explain_bounds(settings: Settings) -> ExplainBounds:
    """The bounds of an explanation the settings give (MAX_EXPLAIN_ROWS, EXPLAIN_MAX_ROW_COST,
    EXPLAIN_MAX_COST, EXPLAIN_TIMEOUT_SECONDS)."""
    given = settings.explanations
    return ExplainBounds(max_rows=given.max_rows, max_row_cost=given.max_row_cost, max_cost=given.max_cost,
                         timeout_seconds=given.timeout_seconds)


def start_in_worker(app: Flask) -> None:
    """As a worker starts: start its shadow runs and its prediction log's writer."""
    domain = app.extensions[EXTENSION]
    domain.runtime.start()
    domain.prediction_log.start()


def stop_in_worker(app: Flask) -> None:
    """Before a worker goes: stop its serving (the rollout figures written) and write its prediction log's queue."""
    domain = app.extensions[EXTENSION]
    domain.runtime.stop(STOP_WAIT_SECONDS)
    domain.prediction_log.stop(timeout=STOP_WAIT_SECONDS)


def _store(app: Flask, root: str | None = None) -> ArtifactStore:
    """The store ``root`` (default ``ARTIFACT_ROOT``) names; one that cannot be used stops the start with one line."""
    storage = settings_of(app).storage
    try:
        return open_store(
            root or storage.artifact_root,
            s3=s3_settings(app),
            cache_dir=storage.cache_dir,
            cache_bytes=storage.cache_bytes,
            serving=_serving_digests(app),
        )
    except UnknownStore as exc:
        raise SystemExit(str(exc)) from None


def s3_settings(app: Flask, url: str = "") -> S3Settings:
    """The app's S3 endpoint and credentials (the ``AWS_*`` settings), for the bucket ``url``."""
    storage = settings_of(app).storage
    return S3Settings(url=url, endpoint=storage.s3_endpoint, access_key_id=storage.s3_access_key_id,
                      secret_access_key=storage.s3_secret_access_key, region=storage.s3_region)


def _serving_digests(app: Flask) -> Callable[[], set[str]]:
    """What tells the node's caches which artifacts they must never let go: what an alias or a rollout
    serves, and what the artifact scrub found damaged in the store (their copy is the last good one)."""
    def serving() -> set[str]:
        with app.app_context():
            digests = lookups.served_digests() | damaged_digests()
            end_read()
            return digests

    return serving


def open_configured_store(root: str) -> ArtifactStore:
    """Another store than the app's, reached with the app's S3 settings and node cache (``artifacts migrate``)."""
    return _store(current_app, root)


def store() -> ArtifactStore:
    """The current app's artifact store."""
    return current_app.extensions[EXTENSION].store


def served_forms() -> ServedForms:
    """The current app's served forms."""
    return current_app.extensions[EXTENSION].forms


def prediction_log() -> PredictionLog:
    """The current app's prediction log."""
    return current_app.extensions[EXTENSION].prediction_log


def data_plane() -> DataPlane:
    """The current app's data plane: where every prediction is answered."""
    return current_app.extensions[EXTENSION].data_plane


def runtime() -> Runtime:
    """The current app's serving runtime."""
    return current_app.extensions[EXTENSION].runtime


def _serve_committed(_sender, changes: tuple) -> None:
    """Hand the changes a transaction of the current app committed to that app's runtime."""
    domain = current_app.extensions.get(EXTENSION)
    if domain is not None:
        domain.runtime.models.apply(changes)
        domain.explain_references.apply(changes)
