"""The data plane: the one place a prediction is answered, whatever edge it came in by (our JSON and
CSV routes, the Open Inference Protocol). It admits (``admission``: a prediction starts only within its
model's and the process's bounds, and before the caller's deadline), routes, runs, times, counts, calls
the observers (the prediction log; the Prometheus counts; the request's trace) and hands back the shadow
runs to start once the answer is sent. A refusal is counted on its own (``registry_admission_refused_total``):
it is no answer of any version, so neither the prediction log nor a rollout's figures hear of it. A
failure comes back as a value, :class:`Failure`, that knows which version was asked; the
edge renders an :class:`Answer` or a :class:`Failure` once, in its own format.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

from registry import tracing
from registry.errors import Overloaded
from registry.serving.admission import Deadline
from registry.serving.inputs import PredictionInput
from registry.serving.predict import after_answer, predict, served_by
from registry.serving.running import Prediction
from registry.serving.runtime import Runtime
from registry.telemetry import (
    ADMISSION_REFUSED, PREDICT_LATENCY, PREDICTIONS, ROUTED_LATENCY, ROUTED_PREDICTIONS, series,
)


@dataclass(frozen=True)
class Call:
    """What was asked: a model, a version number or alias, the request's id, and the caller's deadline if
    it set one."""

    name: str
    ref: str
    request_id: str
    deadline: Deadline | None = None

    @property
    def alias(self) -> str | None:
        """The alias asked for; None for a pinned version."""
        return None if self.ref.isdigit() else self.ref


@dataclass(frozen=True)
class Answer:
    """A prediction, the seconds it took, and what runs once it is sent (its shadow runs), if anything."""

    prediction: Prediction
    seconds: float
    after: Callable[[], None] | None = None


@dataclass(frozen=True)
class Failure:
    """A prediction that failed: the error, the status the edge answers it with, and the (version,
    route, rollout id) that was asked to answer, None when no version was found."""

    error: Exception
    status: int
    served_by: tuple[int, str | None, int | None] | None
    seconds: float


class Observer(Protocol):
    """Told of every answer and failure of the data plane, in the request's thread (so: quickly)."""

    def answered(self, call: Call, answer: Answer) -> None: ...

    def failed(self, call: Call, failure: Failure) -> None: ...


class Log(Protocol):
    """The prediction log, as the data plane uses it: whether it kept an answer under its request id
    (the shadow runs of a kept answer are kept under that id too)."""

    def answered(self, call: Call, answer: Answer) -> bool: ...

    def failed(self, call: Call, failure: Failure) -> None: ...


class DataPlane:
    """Answers predictions with ``runtime``; ``log`` and ``observers`` hear of every answer and failure."""

    def __init__(self, runtime: Runtime, *, log: Log, observers: tuple[Observer, ...] = ()):
        self.runtime = runtime
        self._log = log
        self._traced = TraceAttributes()
        self._observers = (PrometheusCounts(), self._traced, *observers)

    def predict(self, call: Call, given: PredictionInput, *, headers: Mapping[str, str],
                status_of: Callable[[Exception], int]) -> Answer | Failure:
        """Answer ``given`` with ``call``'s model and version or alias (``headers`` may carry a rollout's
        sticky key); never raises for what the prediction met: that is a :class:`Failure`, with the
        status ``status_of`` says the edge answers it with. A prediction over the admission's bounds or past
        its deadline is refused before any of it runs."""
        started = time.perf_counter()
        try:
            with self.runtime.admission.admitted(call.name, call.deadline):
                result = predict(self.runtime, name=call.name, ref=call.ref, request=given, headers=headers,
                                 deadline=call.deadline)
        except Overloaded as exc:
            return self._refused(call, exc, status_of, started)
        except Exception as exc:
            failure = Failure(exc, status_of(exc), served_by(exc), time.perf_counter() - started)
            for observer in (*self._observers, self._log):
                observer.failed(call, failure)
            return failure
        answer = Answer(result, time.perf_counter() - started)
        for observer in self._observers:
            observer.answered(call, answer)
        logged = self._log.answered(call, answer)
        if not result.shadows:
            return answer
        # Run once the answer is sent: never delaying the caller. A shadow run is logged when its caller was,
        # and traced as a child of its caller's span.
        parent = tracing.capture()
        jobs = tuple(replace(job, trace=parent) if job.mirror
                     else replace(job, request_id=call.request_id if logged else None, trace=parent)
                     for job in result.shadows)
        return replace(answer, after=partial(after_answer, self.runtime, replace(result, shadows=jobs)))

    def refusal(self, call: Call, *, status_of: Callable[[Exception], int]) -> Failure | None:
        """The refusal :meth:`predict` would answer ``call`` with now (its deadline passed, or its model or
        the process is at its bound), counted; None when it would start. An edge asks before it reads the
        request's body, so that a refusal under a flood costs no parsing."""
        started = time.perf_counter()
        try:
            self.runtime.admission.check(call.name, call.deadline)
        except Overloaded as exc:
            return self._refused(call, exc, status_of, started)
        return None

    def _refused(self, call: Call, exc: Overloaded, status_of: Callable[[Exception], int], started: float) -> Failure:
        """``exc`` as a failure of no version, counted under its reason (and its model, when served here:
        never a series per made-up name)."""
        ADMISSION_REFUSED.labels(call.name if self.runtime.models.holds(call.name) else "", exc.reason).inc()
        failure = Failure(exc, status_of(exc), None, time.perf_counter() - started)
        self._traced.failed(call, failure)  # neither logged nor counted as a version's: the span names the model
        return failure


class PrometheusCounts:
    """``registry_predictions_total`` and the predict latency, and the routed families of a rollout."""

    def __init__(self):
        self._latency: dict[str, object] = {}  # model -> its child of PREDICT_LATENCY (labels() locks and checks)

    def answered(self, call: Call, answer: Answer) -> None:
        """Count a successful answer under its version (its time under its model), and under its route
        when a rollout routed it."""
        result, version = answer.prediction, str(answer.prediction.version)
        series(PREDICTIONS, model=call.name, version=version, status="200").inc()
        latency = self._latency.get(call.name)
        if latency is None:
            latency = self._latency.setdefault(call.name, PREDICT_LATENCY.labels(call.name))
        latency.observe(answer.seconds)
        if result.rollout_id is not None:
            routed = {"model": call.name, "alias": call.ref, "route": result.route, "version": version}
            series(ROUTED_PREDICTIONS, **routed, status="200").inc()
            series(ROUTED_LATENCY, **routed).observe(answer.seconds)

    def failed(self, call: Call, failure: Failure) -> None:
        """Count a failed answer under its status and the version that was to answer it; a failure before
        any version was found (an unknown name) is not counted: that would be a series per made-up name."""
        if failure.served_by is None:
            return
        version, route, rollout_id = failure.served_by
        series(PREDICTIONS, model=call.name, version=str(version), status=str(failure.status)).inc()
        if rollout_id is not None:
            series(ROUTED_PREDICTIONS, model=call.name, alias=call.ref, route=route, version=str(version),
                   status=str(failure.status)).inc()


class TraceAttributes:
    """The request's span (when traced) names what answered it: ``model.name``, ``model.ref`` (the version or
    alias asked), ``model.version``, ``model.route`` (a rollout's arm) and ``prediction.rows``."""

    def answered(self, call: Call, answer: Answer) -> None:
        """Name the version that answered, and the rows it answered."""
        span = tracing.current()
        if span.is_recording():
            result = answer.prediction
            span.set_attributes({"model.name": call.name, "model.ref": call.ref, "model.version": result.version,
                                 "model.route": result.route or "", "prediction.rows": len(result.predictions)})

    def failed(self, call: Call, failure: Failure) -> None:
        """Name the model asked, and the version that failed when one was found."""
        span = tracing.current()
        if not span.is_recording():
            return
        span.set_attributes({"model.name": call.name, "model.ref": call.ref})
        if failure.served_by is not None:
            version, route, _ = failure.served_by
            span.set_attributes({"model.version": version, "model.route": route or ""})
