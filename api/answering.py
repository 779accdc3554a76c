"""Answering a prediction, the same way on every edge: the clock, the one call into the prediction
use case, counting in the Prometheus families, the version and route headers, and the shadow run
that follows the answer. Each edge brings its input, how it renders an answer and how it words
a failure."""
import time
from collections.abc import Callable
from functools import lru_cache, partial

from flask import Response, request

from api import domain, errors
from registry.serving.inputs import PredictionInput
from registry.serving.predict import after_answer, predict, served_by
from registry.serving.running import Prediction
from registry.telemetry import PREDICT_LATENCY, PREDICTIONS, ROUTED_LATENCY, ROUTED_PREDICTIONS

Rendered = tuple[bytes, str, dict]  # body, mimetype, headers


def answer(name: str, ref: str, given: PredictionInput, *, render: Callable[[Prediction], Rendered],
           status_of: Callable[[Exception], int] = errors.status_of) -> Response:
    """Predict ``given`` with ``name``/``ref`` and answer with ``render``'s response; a failure is
    counted under the status ``status_of`` says the edge answers it with, then raised for the edge."""
    started = time.perf_counter()
    runtime = domain.runtime()
    try:
        result = predict(runtime, name=name, ref=ref, request=given, headers=request.headers)
    except Exception as exc:
        _count_failure(name, ref, exc, status_of(exc))
        raise
    _count_answer(name, ref, result, time.perf_counter() - started)
    body, mimetype, headers = render(result)
    response = Response(body, mimetype=mimetype, headers={**headers, **_answer_headers(result)})
    if result.shadow is not None:
        # Runs once the answer is sent: the shadow never delays the caller.
        response.call_on_close(partial(after_answer, runtime, result))
    return response


def _count_answer(name: str, ref: str, result: Prediction, elapsed: float) -> None:
    """Count a successful answer under its version, and under its route when a rollout routed it."""
    version = str(result.version)
    answered, latency = _success_series(name, version)
    answered.inc()
    latency.observe(elapsed)
    if result.route is not None:
        routed, routed_latency = _route_series(name, ref, result.route, version)
        routed.inc()
        routed_latency.observe(elapsed)


def _count_failure(name: str, ref: str, exc: Exception, status: int) -> None:
    """Count a failed answer under its status and the version that was to answer it; a failure before
    any version was found (an unknown name) is not counted: that would be a series per made-up name."""
    found = served_by(exc)
    if found is None:
        return
    version, route = found
    PREDICTIONS.labels(name, str(version), str(status)).inc()
    if route is not None:
        ROUTED_PREDICTIONS.labels(name, ref, route, str(version), str(status)).inc()


def _answer_headers(result: Prediction) -> dict:
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
