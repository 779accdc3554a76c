"""Liveness, readiness and Prometheus metrics."""
from flask import Response, current_app
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from api import domain, health
from api.errors import problem
from registry import metric_files
from registry.telemetry import EveryFamily, ServedOnly

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
    checks, problems = health.readiness()
    if problems:
        failing = "; ".join(f"{name}: {why}" for name, why in problems.items())
        return problem(503, "Service Unavailable", f"not ready: {failing}", {"checks": checks})
    return {
        "status": "ready",
        "checks": checks,
        "unservable": domain.runtime().models.unservable(),
        "warnings": health.store_warnings(),
    }


@blp.route("/metrics")
@blp.response(200, description="Prometheus text format")
def metrics():
    """Prometheus metrics, summed over every worker when running under gunicorn; series that name a
    version only while some live worker holds it."""
    multiproc_dir = current_app.config.get("PROMETHEUS_MULTIPROC_DIR")
    source = REGISTRY
    if multiproc_dir:
        metric_files.flush(multiproc_dir)  # this worker's own counts as of now; the others' as of their last flush
        source = SharedFiles(multiproc_dir)
    registry = CollectorRegistry()
    registry.register(EveryFamily(ServedOnly(source)))
    payload = generate_latest(registry)
    # content_type, not mimetype: Flask would append a second "; charset=utf-8"
    return Response(payload, content_type=CONTENT_TYPE_LATEST)


class SharedFiles:
    """A collector: the metrics every process of this host shared in ``directory``, added up."""

    def __init__(self, directory: str):
        self._directory = directory

    def collect(self):
        """The summed families."""
        return metric_files.collect(self._directory)
