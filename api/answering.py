"""Answering a prediction, the same way on every edge: the clock, the one call into the prediction
use case, counting in the Prometheus families, the version and route headers, and the shadow run
that follows the answer. Each edge brings its input, how it renders an answer and how it words
a failure."""
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial

from flask import Response

from api import domain, errors
from registry.monitoring.prediction_log import Entry
from registry.serving.inputs import PredictionInput
from registry.serving.predict import after_answer, predict, served_by
from registry.serving.running import Prediction
from registry.tables import utcnow
from registry.telemetry import PREDICT_LATENCY, PREDICTIONS, ROUTED_LATENCY, ROUTED_PREDICTIONS, series

Rendered = tuple[bytes, str, dict]  # body, mimetype, headers


@dataclass(frozen=True)
class Answered:
    """A prediction's answer, ready to send: its body, mimetype and headers, and what runs once it
    is sent (the shadow runs), if anything."""

    body: bytes
    mimetype: str
    headers: dict[str, str]
    after: Callable[[], None] | None

    def response(self) -> Response:
        """The answer as a Flask response."""
        response = Response(self.body, mimetype=self.mimetype, headers=self.headers)
        if self.after is not None:
            response.call_on_close(self.after)
        return response


def answer(name: str, ref: str, given: PredictionInput, *, headers: Mapping[str, str], request_id: str,
           render: Callable[[Prediction], Rendered],
           status_of: Callable[[Exception], int] = errors.status_of) -> Answered:
    """Predict ``given`` with ``name``/``ref`` and answer with what ``render`` makes of it; a failure
    is counted under the status ``status_of`` says the edge answers it with, then raised for the edge.

    ``headers`` are the request's (a rollout's sticky key may be among them); ``request_id`` is what
    the prediction log records the answer, or the failure, under."""
    started = time.perf_counter()
    runtime = domain.runtime()
    try:
        result = predict(runtime, name=name, ref=ref, request=given, headers=headers)
    except Exception as exc:
        status = status_of(exc)
        _count_failure(name, ref, exc, status)
        _log_failure(name, ref, request_id, exc, status, time.perf_counter() - started)
        raise
    elapsed = time.perf_counter() - started
    _count_answer(name, ref, result, elapsed)
    logged_as = _log_answer(name, ref, request_id, result, elapsed)
    body, mimetype, rendered_headers = render(result)
    after = None
    if result.shadows:
        # Run once the answer is sent: never delaying the caller. A shadow run is logged when its caller was.
        jobs = tuple(job if job.mirror else replace(job, request_id=logged_as) for job in result.shadows)
        after = partial(after_answer, runtime, replace(result, shadows=jobs))
    return Answered(body, mimetype, {**rendered_headers, **_answer_headers(result)}, after)


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


def _log_answer(name: str, ref: str, request_id: str, result: Prediction, elapsed: float) -> str | None:
    """Log the answer if the model's share draws it; the request id it is logged under, if it is."""
    prediction_log = domain.prediction_log()
    if not prediction_log.keeps(name, 200, request_id):
        return None
    outputs = {"predictions": result.predictions}
    if result.probabilities is not None:
        outputs |= {"probabilities": result.probabilities, "classes": result.classes}
    prediction_log.offer(Entry(
        request_id=request_id, model=name, version=result.version, alias=_alias(ref), route=result.route,
        rows=result.rows, outputs=outputs, latency_ms=elapsed * 1000, status=200, at=utcnow(),
    ))
    return request_id


def _log_failure(name: str, ref: str, request_id: str, exc: Exception, status: int, elapsed: float) -> None:
    """Log a failure (every one is kept); not one before a version was found."""
    found = served_by(exc)
    prediction_log = domain.prediction_log()
    if found is None or not prediction_log.keeps(name, status, request_id):
        return
    version, route, _ = found
    prediction_log.offer(Entry(
        request_id=request_id, model=name, version=version, alias=_alias(ref), route=route,
        rows=None, outputs={"detail": getattr(exc, "detail", None) or str(exc)}, latency_ms=elapsed * 1000,
        status=status, at=utcnow(),
    ))


def _alias(ref: str) -> str | None:
    return None if ref.isdigit() else ref


def _answer_headers(result: Prediction) -> dict:
    """``X-Model-Version``, and ``X-Model-Route`` when a rollout routed the request."""
    headers = {"X-Model-Version": str(result.version)}
    if result.route is not None:
        headers["X-Model-Route"] = result.route
    return headers
