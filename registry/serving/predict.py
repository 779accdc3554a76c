"""The prediction use case: route the request, check the rows, predict, and count it for any rollout."""
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sklearn

from registry.artifacts.signature import Signature
from registry.errors import InvalidInput
from registry.rollouts.shadow import ShadowJob
from registry.serving.cache import ServableModel
from registry.serving.inputs import ModelInput

if TYPE_CHECKING:  # the server runs this module's models; importing it here would be circular
    from registry.serving.server import ModelServer


@dataclass(frozen=True)
class Prediction:
    """What a model answered, which version answered it, and by which route (None: a pinned version)."""

    model: str
    version: int
    predictions: list
    probabilities: list | None = None
    classes: list | None = None
    route: str | None = None
    shadow: ShadowJob | None = field(default=None, compare=False)  # run after the caller has its answer

    def to_dict(self) -> dict:
        """The response body of the predict routes."""
        body = {"model": self.model, "version": self.version, "predictions": self.predictions}
        if self.probabilities is not None:
            body["probabilities"] = self.probabilities
            body["classes"] = self.classes
        return body


def predict(server: "ModelServer", *, name: str, ref: str, parse: Callable[[Signature], ModelInput],
            return_proba: bool, route_key: Callable[[str], str | None]) -> Prediction:
    """Answer ``name``/``ref``: an alias request follows its rollout (``route_key(header)`` reads the
    sticky key); ``parse`` turns the body into rows checked against the answering version's signature.

    A failure carries the version and route that were asked to answer (see :func:`served_by`).
    """
    route = server.route(name, ref, route_key)
    tally = (route.rollout_id, route.role, route.servable.version)
    started = time.perf_counter()
    try:
        result = _answer(route.servable, parse, return_proba)
    except Exception as exc:
        exc.served_by = (route.servable.version, route.role)
        if route.rollout_id is not None:
            server.figures.answered(tally, time.perf_counter() - started, ok=False)
        raise
    if route.rollout_id is None:
        return replace(result, route=route.role)
    server.figures.answered(tally, time.perf_counter() - started, ok=True)
    shadow = ShadowJob(route.rollout_id, ref, route.shadow, parse, result.predictions) if route.shadow else None
    return replace(result, route=route.role, shadow=shadow)


def served_by(exc: BaseException) -> tuple[int, str | None] | None:
    """(version, route) asked to answer when a prediction failed with ``exc``; None when none was found."""
    return getattr(exc, "served_by", None)


def after_answer(server: "ModelServer", prediction: Prediction) -> None:
    """Once the caller has its answer: queue the prediction's shadow run, if it has one (never blocks)."""
    if prediction.shadow is not None:
        server.shadows.offer(prediction.shadow)


def _answer(servable: ServableModel, parse: Callable[[Signature], ModelInput], return_proba: bool) -> Prediction:
    if return_proba and servable.task != "classification":
        raise InvalidInput(
            f"version {servable.version} of {servable.model!r} is a regressor: probabilities exist only for "
            "classifiers; drop return_proba"
        )
    return run_model(servable, parse(servable.signature), return_proba)


def run_model(servable: ServableModel, rows: ModelInput, return_proba: bool) -> Prediction:
    """Predict ``rows`` (already checked against the signature) with a loaded model."""
    estimator = servable.estimator if servable.predictor is None else servable.predictor
    if servable.takes_frame and isinstance(rows, np.ndarray):
        rows = pd.DataFrame(rows, columns=servable.signature.names)
    try:
        # The rows were checked finite already; scikit-learn's own re-check is most of predict's cost.
        with sklearn.config_context(assume_finite=True):
            predictions = estimator.predict(rows)
            probabilities = estimator.predict_proba(rows) if return_proba else None
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"version {servable.version} of {servable.model!r} could not use these rows: {exc}") from None
    if predictions.dtype.kind == "f" and not np.isfinite(predictions).all():
        raise InvalidInput(
            f"version {servable.version} of {servable.model!r} gave non-finite predictions for these rows; "
            "check that the values are within the range the model was trained on"
        )
    classes = list(servable.signature.classes) if return_proba else None
    return Prediction(
        servable.model,
        servable.version,
        predictions.tolist(),
        probabilities.tolist() if probabilities is not None else None,
        classes,
    )
