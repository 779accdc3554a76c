"""The prediction use case: route the request, parse its rows for the version that answers, predict,
and count it for any rollout. Every edge (the JSON and CSV routes, the Open Inference Protocol, the
dashboard) calls :func:`predict` with its own :class:`PredictionInput`."""
import time
from collections.abc import Mapping
from dataclasses import replace

from registry import tracing
from registry.errors import BatchTooLarge, ExplanationTimedOut, InvalidInput
from registry.serving.admission import Deadline
from registry.serving.cache import ServableModel
from registry.serving.explain_bounds import admit
from registry.serving.explanations import space_for, takes_reference
from registry.serving.inputs import PredictionInput
from registry.serving.routing import CANARY
from registry.serving.running import Prediction, run_model
from registry.serving.runtime import Runtime
from registry.serving.shadow import ShadowJob

# Rows of one canary request the agreement gate compares (its first): one request's weight in the gate
# is bounded however many rows it carries, so a caller cannot pad the gate with one large batch of rows it chose.
MIRRORED_ROWS = 10


def predict(runtime: Runtime, *, name: str, ref: str, request: PredictionInput, headers: Mapping[str, str],
            deadline: Deadline | None = None) -> Prediction:
    """Answer ``name``/``ref``: an alias request follows its rollout (``headers`` may carry its sticky key); an
    explanation asked ends by the caller's ``deadline`` or the server's own (``registry.serving.explain_bounds``).

    A failure carries the version and route that were asked to answer (see :func:`served_by`).
    """
    with tracing.span("resolve") as span:
        route = runtime.models.route(name, ref, headers)
        if span.is_recording():
            span.set_attributes({"model.name": name, "model.ref": ref, "model.version": route.servable.version,
                                 "model.route": route.role or ""})
    tally = (route.rollout_id, route.role, route.servable.version)
    started = time.perf_counter()
    try:
        result = _answer(runtime, route.servable, request, route.role, deadline)
    except Exception as exc:
        exc.served_by = (route.servable.version, route.role, route.rollout_id)
        if route.rollout_id is not None and caller_fault(exc):
            runtime.figures.refused(tally)
        elif route.rollout_id is not None:
            runtime.figures.answered(tally, time.perf_counter() - started, ok=False, unit=route.unit,
                                     epoch=route.epoch)
        elif route.role is not None and not caller_fault(exc):
            runtime.figures.answered_unrouted((name, ref), route.servable.version,
                                              seconds=time.perf_counter() - started, ok=False)
        raise
    if route.rollout_id is None:
        if route.role is not None:  # an alias answer: kept a few seconds for a rollout this process learns of late
            runtime.figures.answered_unrouted((name, ref), route.servable.version,
                                              seconds=time.perf_counter() - started, ok=True)
        return result
    weighed = runtime.figures.answered(tally, time.perf_counter() - started, ok=True, rows=len(result.predictions),
                                       unit=route.unit, epoch=route.epoch)
    jobs = []
    if route.shadow is not None:
        jobs.append(ShadowJob(route.rollout_id, ref, route.shadow, request, result.predictions))
    if route.mirror is not None and weighed:  # the primary answers the canary's rows too: the agreement gate
        jobs.append(ShadowJob(route.rollout_id, ref, route.mirror, request, result.predictions, role=CANARY,
                              arm_version=route.servable.version, max_rows=MIRRORED_ROWS))
    return replace(result, rollout_id=route.rollout_id, shadows=tuple(jobs), weighed=weighed)


def caller_fault(exc: BaseException) -> bool:
    """Whether a prediction failed for what the caller sent (its rows, its batch, an explanation it gave too little
    time): never counted as an error of the version that was asked; anything else is the server's fault."""
    return isinstance(exc, (InvalidInput, BatchTooLarge, ExplanationTimedOut))


def served_by(exc: BaseException) -> tuple[int, str | None, int | None] | None:
    """(version, route, rollout id) asked to answer when a prediction failed with ``exc``; None when
    none was found."""
    return getattr(exc, "served_by", None)


def after_answer(runtime: Runtime, prediction: Prediction) -> None:
    """Once the caller has its answer: queue the prediction's shadow and mirror runs (never blocks)."""
    for job in prediction.shadows:
        runtime.shadows.offer(job)


def _answer(runtime: Runtime, servable: ServableModel, request: PredictionInput, route: str | None,
            deadline: Deadline | None) -> Prediction:
    return_proba = request.wants_probabilities(servable)
    if return_proba and servable.task != "classification":
        raise InvalidInput(
            f"version {servable.version} of {servable.model!r} is a regressor: probabilities exist only for "
            "classifiers; drop return_proba"
        )
    asked = request.asked_explanation(servable)
    if asked is not None:
        space_for(servable, asked)  # a space the version does not offer is refused before any work
    with tracing.span("parse") as span:
        rows = request.rows(servable.signature)
        span.set_attribute("prediction.rows", len(rows))
    if asked is None:
        return run_model(servable, rows, return_proba, route=route)
    admit(servable.predictor, len(rows), runtime.explain_bounds,  # what it would cost, before any work
          where=f"version {servable.version} of {servable.model!r}")
    reference = runtime.explain_reference(servable) if takes_reference(servable) else None
    return run_model(servable, rows, return_proba, explained=asked, reference=reference, route=route,
                     explain_until=runtime.explain_bounds.deadline(None if deadline is None else deadline.at))
