"""The domain objects of one app (its artifact store and its serving runtime), built from its
config, and how the changes its use cases commit reach that runtime."""
from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy.engine import make_url

from registry.artifacts.store import ArtifactStore
from registry.changes import committed
from registry.serving.loader import ArtifactLoader
from registry.serving.notifications import ChangeListener
from registry.serving.runtime import Runtime, build_runtime

EXTENSION = "model_registry"


@dataclass(frozen=True)
class Domain:
    """What one app instance stores and serves with."""

    store: ArtifactStore
    runtime: Runtime


def init_app(app: Flask) -> None:
    """Build the app's store and runtime; its runtime serves what the app commits, once it commits."""
    config = app.config
    store = ArtifactStore(_local_root(str(config["ARTIFACT_ROOT"])))
    runtime = build_runtime(
        ArtifactLoader(store, max_model_bytes=config["MAX_MODEL_MB"] * 1024 * 1024),
        cache_size=config["MODEL_CACHE_SIZE"],
        refresh_seconds=config["ALIAS_REFRESH_SECONDS"],
        session_scope=app.app_context,
    )
    app.extensions[EXTENSION] = Domain(store, runtime)
    committed.connect(_serve_committed)  # once per process: connecting again changes nothing
    if config["WATCH_ALIASES"]:
        url = make_url(config["SQLALCHEMY_DATABASE_URI"])
        if url.get_backend_name() == "postgresql":
            conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
            runtime.models.listen(ChangeListener(conninfo))
        app.before_request(runtime.models.ensure_started)


def _local_root(root: str) -> str:
    """``ARTIFACT_ROOT`` as a directory; a URL (``s3://…``, or any scheme) stops the start with one line,
    rather than becoming a local directory named after its scheme."""
    scheme, separator, _ = root.partition("://")
    if separator and scheme.isidentifier():
        raise SystemExit(
            f"ARTIFACT_ROOT={root}: {scheme}:// is not a store this release can use; "
            "set ARTIFACT_ROOT to a directory (object storage is not supported yet)"
        )
    return root


def store() -> ArtifactStore:
    """The current app's artifact store."""
    return current_app.extensions[EXTENSION].store


def runtime() -> Runtime:
    """The current app's serving runtime."""
    return current_app.extensions[EXTENSION].runtime


def _serve_committed(_sender, changes: tuple) -> None:
    """Hand the changes a transaction of the current app committed to that app's runtime."""
    domain = current_app.extensions.get(EXTENSION)
    if domain is not None:
        domain.runtime.models.apply(changes)
