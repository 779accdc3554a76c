"""Liveness, readiness and Prometheus metrics."""
from flask import Response
from flask_smorest import Blueprint
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from api import domain, health
from api.auth import scrapes
from api.errors import problem
from api.settings import settings_of
from config import MB
from registry.monitoring.gauges import HealthGauges, LogGauges
from registry.process import metric_files
from registry.telemetry import EveryFamily, ServedOnly

blp = Blueprint("ops", __name__, description="Operations")


@blp.route("/healthz")
@blp.response(200)
def healthz():
    """The process is alive."""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.response(200, description="Can serve predictions: `ready`, or `degraded` with what is down in `problems`")
@blp.alt_response(503, description="Cannot serve: the database does not answer and this process never read its "
                                   "aliases, or the server is stopping")
def readyz():
    """Ready when this process can serve predictions; a dependency that is down while it can is
    reported as ``degraded``, not as unready (a load balancer would take the whole fleet out)."""
    ready = health.readiness()
    if not ready.can_serve:
        failing = "; ".join(f"{name}: {why}" for name, why in ready.problems.items())
        return problem(503, "Service Unavailable", f"not ready: {failing}", {"checks": ready.checks})
    return {
        "status": ready.status,
        "checks": ready.checks,
        "problems": ready.problems,
        "unservable": domain.runtime().models.readiness.unservable(),
        "warnings": health.warnings(),
    }


@blp.route("/metrics")
@scrapes
@blp.response(200, description="Prometheus text format")
def metrics():
    """Prometheus metrics, summed over every worker when running under gunicorn; series that name a
    version only while some live worker holds it; the live quality and drift of served versions; what the
    prediction log holds. Open, unless the deployment sets REQUIRE_AUTH_FOR_READS: then a token of role
    ``metrics`` or ``admin``."""
    registry = CollectorRegistry()
    registry.register(EveryFamily(ServedOnly(host_metrics())))
    registry.register(HealthGauges())  # the last monitoring sweep's figures: the same on every replica
    registry.register(LogGauges(settings_of().prediction_log.max_bytes / MB))  # read now: the same on every replica
    payload = generate_latest(registry)
    # content_type, not mimetype: Flask would append a second "; charset=utf-8"
    return Response(payload, content_type=CONTENT_TYPE_LATEST)


def host_metrics():
    """A collector of this host's metrics: every worker's, added up, under gunicorn; this process's else."""
    multiproc_dir = settings_of().server.metrics_dir
    if not multiproc_dir:
        return REGISTRY
    metric_files.flush(multiproc_dir)  # this worker's own counts as of now; the others' as of their last flush
    return metric_files.SharedFiles(multiproc_dir)
