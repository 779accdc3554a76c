"""Running a loaded model on rows already checked against its signature, and what it answered."""
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from registry import tracing
from registry.errors import ArtifactCorrupted, InvalidInput
from registry.serving.cache import ServableModel
from registry.serving.explanations import ExplainAsk, Explanations, explain
from registry.serving.inputs import ModelInput
from registry.serving.shadow import ShadowJob
from registry.inference.tree_walk import NodesDamaged


@dataclass(frozen=True)
class Prediction:
    """What a model answered, which version answered it, and by which route (None: a pinned version)."""

    model: str
    version: int
    predictions: list
    probabilities: list | None = None
    classes: list | None = None
    route: str | None = None
    rollout_id: int | None = field(default=None, compare=False)  # the rollout that routed it, if any
    shadows: tuple[ShadowJob, ...] = field(default=(), compare=False)  # shadow and mirror runs after the answer
    rows: ModelInput | None = field(default=None, compare=False, repr=False)  # what the model was given
    explanations: Explanations | None = field(default=None, compare=False)  # when asked for
    # False when a rollout's gates do not weigh it: its sticky key had sent its share to the arm already.
    weighed: bool = field(default=True, compare=False)
    # The loaded version that answered: the prediction log's writer explains the rows it keeps with it.
    servable: ServableModel | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        """The response body of the predict routes."""
        body = {"model": self.model, "version": self.version, "predictions": self.predictions}
        if self.probabilities is not None:
            body["probabilities"] = self.probabilities
            body["classes"] = self.classes
        if self.explanations is not None:
            body.update(self.explanations.to_dict())
        return body


def run_model(servable: ServableModel, rows: ModelInput, return_proba: bool, *, explained: ExplainAsk | None = None,
              reference: np.ndarray | None = None, explain_until: float | None = None, arrays: bool = False,
              route: str | None = None) -> Prediction:
    """Predict ``rows`` (already checked against the signature) with a loaded model, and explain each
    row when ``explained`` asks (``registry.serving.explanations``; a linear model against ``reference``
    when given), stopping at ``explain_until`` (``time.monotonic()`` seconds); with ``arrays`` the predictions and probabilities stay the model's NumPy arrays (a batch
    job's columns), else lists. ``route`` is the answer's route (None: a pinned version)."""
    estimator = servable.predictor
    if servable.takes_frame and isinstance(rows, np.ndarray):
        import pandas as pd  # loaded already: a model that takes named columns was unpickled with it

        rows = pd.DataFrame(rows, columns=servable.signature.names)
    try:
        with tracing.span("predict") as span, _finiteness_assumed(estimator, return_proba):
            span.set_attribute("prediction.rows", len(rows))
            predictions, probabilities = _predicted(estimator, rows, return_proba)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"version {servable.version} of {servable.model!r} could not use these rows: {exc}") from None
    except NodesDamaged as exc:  # the served form's file was changed under this worker: not the caller's fault
        raise ArtifactCorrupted(
            f"version {servable.version} of {servable.model!r} cannot answer in this worker: {exc}; the worker "
            "loads it again from a checked form at its next alias refresh (ALIAS_REFRESH_SECONDS): retry then"
        ) from None
    if predictions.dtype.kind == "f" and not np.isfinite(predictions).all():
        raise InvalidInput(
            f"version {servable.version} of {servable.model!r} gave non-finite predictions for these rows; "
            "check that the values are within the range the model was trained on"
        )
    classes = list(servable.signature.classes) if return_proba else None
    explanations = None
    if explained is not None:
        with tracing.span("explain") as span:
            span.set_attribute("prediction.rows", len(rows))
            explanations = explain(servable, rows, explained, reference=reference, until=explain_until)
    return Prediction(
        servable.model,
        servable.version,
        predictions if arrays else predictions.tolist(),
        probabilities if arrays or probabilities is None else probabilities.tolist(),
        classes,
        route,
        rows=rows,
        explanations=explanations,
        servable=servable,
    )


def _predicted(estimator, rows: ModelInput, proba: bool) -> tuple:
    """``predict`` and, with ``proba``, ``predict_proba`` of ``rows``: from one pass when the compiled
    predictor gives both at once (a forest walked once, a linear model's product taken once)."""
    if not proba:
        return estimator.predict(rows), None
    both = getattr(estimator, "predict_and_proba", None)
    if both is not None:
        return both(rows)
    return estimator.predict(rows), estimator.predict_proba(rows)


def _finiteness_assumed(estimator, proba: bool) -> AbstractContextManager:
    """The rows were checked finite already; scikit-learn's own re-check is most of its predict's cost.
    A compiled model that will not call scikit-learn skips the context (a few µs a request)."""
    runs = getattr(estimator, "runs_scikit_learn", None)
    if runs is not None and not runs(proba):
        return nullcontext()
    import sklearn  # loaded already: what will run was unpickled with it

    return sklearn.config_context(assume_finite=True)


def predictions_of(servable: ServableModel, rows: ModelInput) -> list:
    """Just the predictions (what shadow runs compare with what the caller got)."""
    return run_model(servable, rows, return_proba=False).predictions
