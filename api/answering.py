"""Answering a prediction, the same way on every edge: the clock, the one call into the prediction
use case, counting in the Prometheus families, the version and route headers, and the shadow run
that follows the answer. Each edge brings its input, how it renders an answer and how it words
a failure."""
import time
from collections.abc import Callable
from functools import partial

from flask import Response, request

from api import domain, errors
from registry.serving.inputs import PredictionInput
from registry.serving.predict import after_answer, predict, served_by
from registry.serving.running import Prediction
from registry.telemetry import PREDICT_LATENCY, PREDICTIONS, ROUTED_LATENCY, ROUTED_PREDICTIONS, series

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
    """Count a successful answer under its version (its time under its model), and under its route
    when a rollout routed it."""
    version = str(result.version)
    series(PREDICTIONS, model=name, version=version, status="200").inc()
    PREDICT_LATENCY.labels(name).observe(elapsed)
    if result.rollout_id is not None:
        routed = {"model": name, "alias": ref, "route": result.route, "version": version}
        series(ROUTED_PREDICTIONS, **routed, status="200").inc()
        series(ROUTED_LATENCY, **routed).observe(elapsed)


def _count_failure(name: str, ref: str, exc: Exception, status: int) -> None:
    """Count a failed answer under its status and the version that was to answer it; a failure before
    any version was found (an unknown name) is not counted: that would be a series per made-up name."""
    found = served_by(exc)
    if found is None:
        return
    version, route, rollout_id = found
    series(PREDICTIONS, model=name, version=str(version), status=str(status)).inc()
    if rollout_id is not None:
        series(ROUTED_PREDICTIONS, model=name, alias=ref, route=route, version=str(version), status=str(status)).inc()


def _answer_headers(result: Prediction) -> dict:
    """``X-Model-Version``, and ``X-Model-Route`` when a rollout routed the request."""
    headers = {"X-Model-Version": str(result.version)}
    if result.route is not None:
        headers["X-Model-Route"] = result.route
    return headers
