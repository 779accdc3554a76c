"""Counting prediction answers in the Prometheus families, the same way for every protocol edge."""
from functools import lru_cache

from api.errors import status_of
from registry.serving.predict import Prediction, served_by
from registry.telemetry import PREDICT_LATENCY, PREDICTIONS, ROUTED_LATENCY, ROUTED_PREDICTIONS


def count_answer(name: str, ref: str, result: Prediction, elapsed: float) -> None:
    """Count a successful answer under its version, and under its route when a rollout routed it."""
    version = str(result.version)
    answered, latency = _success_series(name, version)
    answered.inc()
    latency.observe(elapsed)
    if result.route is not None:
        routed, routed_latency = _route_series(name, ref, result.route, version)
        routed.inc()
        routed_latency.observe(elapsed)


def count_failure(name: str, ref: str, exc: Exception, asked: int | None = None) -> None:
    """Count a failed answer under its status and the version that was to answer it (``asked`` when
    the use case was not reached); unknown names are not counted: a series per made-up name."""
    version, route = served_by(exc) or (asked, None)
    if version is None:
        return
    status = str(status_of(exc))
    PREDICTIONS.labels(name, str(version), status).inc()
    if route is not None:
        ROUTED_PREDICTIONS.labels(name, ref, route, str(version), status).inc()


def answer_headers(result: Prediction) -> dict:
    """``X-Model-Version``, and ``X-Model-Route`` when a rollout routed the request."""
    headers = {"X-Model-Version": str(result.version)}
    if result.route is not None:
        headers["X-Model-Route"] = result.route
    return headers


@lru_cache(maxsize=4096)
def _success_series(name: str, version: str):
    """The labelled metric children of a model version's successful answers, looked up once."""
    return PREDICTIONS.labels(name, version, "200"), PREDICT_LATENCY.labels(name, version)


@lru_cache(maxsize=4096)
def _route_series(name: str, alias: str, route: str, version: str):
    """The labelled metric children of an alias route's successful answers, looked up once."""
    return ROUTED_PREDICTIONS.labels(name, alias, route, version, "200"), ROUTED_LATENCY.labels(name, alias, route, version)
