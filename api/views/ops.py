"""Liveness, readiness and Prometheus metrics."""
from flask import Response, current_app
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from sqlalchemy import text

from api.errors import problem
from api.services import services
from registry.db import db
from registry.telemetry import EveryFamily

blp = Blueprint("ops", __name__, description="Operations")


@blp.route("/healthz")
@blp.response(200)
def healthz():
    """The process is alive."""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.response(200)
@blp.alt_response(503, description="The database or the artifact store is unreachable")
def readyz():
    """Ready when the database answers and the artifact store can be written."""
    checks = readiness_checks()
    if not all(checks.values()):
        failing = ", ".join(name for name, ok in checks.items() if not ok)
        return problem(503, "Service Unavailable", f"not ready: {failing} unreachable", {"checks": checks})
    return {
        "status": "ready",
        "checks": checks,
        "unservable": services().server.unservable(),
        "warnings": _store_warnings(),
    }


@blp.route("/metrics")
@blp.response(200, description="Prometheus text format")
def metrics():
    """Prometheus metrics, summed over every worker when running under gunicorn."""
    multiproc_dir = current_app.config.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        registry = CollectorRegistry()
        registry.register(EveryFamily(multiprocess.MultiProcessCollector(None, path=multiproc_dir)))
        payload = generate_latest(registry)
    else:
        payload = generate_latest()
    # content_type, not mimetype: Flask would append a second "; charset=utf-8"
    return Response(payload, content_type=CONTENT_TYPE_LATEST)


def readiness_checks() -> dict[str, bool]:
    """What /readyz checks, each true when it is reachable (the V2 edge asks the same)."""
    return {"database": _database_ok(), "artifact_store": services().store.is_reachable()}


def _store_warnings() -> list[str]:
    """A nearly full store is a warning, not unreadiness: predictions still work, only uploads will fail."""
    free = services().store.free_bytes()
    minimum_mb = current_app.config["MIN_FREE_STORE_MB"]
    if free is None or free >= minimum_mb * 1024 * 1024:
        return []
    return [
        f"the artifact store has {free / 1024 / 1024:.1f} MB free, under MIN_FREE_STORE_MB={minimum_mb}: "
        "uploads will soon be refused with 507; free space (`flask --app wsgi artifacts gc`) or grow the volume"
    ]


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return True
    except Exception:  # readiness reports any failure as not ready rather than raising
        db.session.rollback()
        return False
