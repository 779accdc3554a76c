"""The prediction use case: find the serving model, check the rows, predict."""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sklearn

from registry.cache import ServableModel
from registry.errors import InvalidInput
from registry.inputs import ModelInput
from registry.serving import ModelServer
from registry.signature import Signature


@dataclass(frozen=True)
class Prediction:
    """What a model answered, and which version answered it."""

    model: str
    version: int
    predictions: list
    probabilities: list | None = None
    classes: list | None = None

    def to_dict(self) -> dict:
        """The response body of the predict routes."""
        body = {"model": self.model, "version": self.version, "predictions": self.predictions}
        if self.probabilities is not None:
            body["probabilities"] = self.probabilities
            body["classes"] = self.classes
        return body


def serving_model(server: ModelServer, name: str, ref: str) -> ServableModel:
    """The loaded model that answers ``name``/``ref`` right now (a version, an alias or ``latest``)."""
    return server.servable(name, ref)


def predict(servable: ServableModel, parse: Callable[[Signature], ModelInput], return_proba: bool) -> Prediction:
    """Answer with ``servable``; ``parse`` turns the body into rows checked against its signature."""
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
