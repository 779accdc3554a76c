"""Answering a prediction, the same way on every edge: one call into the data plane
(``registry.serving.data_plane``), then the answer rendered by the edge, with the version and route
headers and the shadow runs to start once it is sent; a failure is returned for the edge to render
as ``api/errors.py`` describes it, the one place errors become HTTP. The caller's deadline
(``X-Request-Timeout``, ``api/deadlines.py``) goes with the call: the data plane honours it before
computing."""
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from api import domain, errors
from registry.serving.admission import Deadline
from registry.serving.data_plane import Call, DataPlane, Failure
from registry.serving.inputs import PredictionInput
from registry.serving.running import Prediction

Rendered = tuple[bytes, str, dict]  # body, mimetype, headers
MODEL_VERSION = "X-Model-Version"  # the version that answered
MODEL_ROUTE = "X-Model-Route"  # the rollout's arm that answered (primary or canary), when one routed the request


@dataclass(frozen=True)
class Answered:
    """A prediction's answer, ready to send: its body, mimetype and headers, and what runs once it
    is sent (the shadow runs), if anything."""

    body: bytes
    mimetype: str
    headers: dict[str, str]
    after: Callable[[], None] | None


def answer(name: str, ref: str, given: PredictionInput, *, headers: Mapping[str, str], request_id: str,
           render: Callable[[Prediction], Rendered], deadline: Deadline | None = None,
           status_of: Callable[[Exception], int] = errors.status_of, plane: DataPlane | None = None) -> Answered | Failure:
    """Predict ``given`` with ``name``/``ref`` and answer with what ``render`` makes of it, or the
    :class:`Failure` the data plane met (already counted, under the status ``status_of`` says the edge
    answers it with, and logged under ``request_id``).

    ``headers`` are the request's (a rollout's sticky key may be among them); ``deadline`` the caller's;
    ``plane`` the data plane to ask (default: the current app's)."""
    outcome = (plane or domain.data_plane()).predict(Call(name, ref, request_id, deadline), given, headers=headers,
                                          status_of=status_of)
    if isinstance(outcome, Failure):
        return outcome
    body, mimetype, rendered_headers = render(outcome.prediction)
    return Answered(body, mimetype, {**rendered_headers, **model_headers(outcome.prediction)}, outcome.after)


def model_headers(prediction: Prediction) -> dict[str, str]:
    """What every edge sends with an answer: ``X-Model-Version``, and ``X-Model-Route`` when a rollout routed the
    request."""
    if prediction.route is None:
        return {MODEL_VERSION: str(prediction.version)}
    return {MODEL_VERSION: str(prediction.version), MODEL_ROUTE: prediction.route}


def refusal(name: str, ref: str, *, request_id: str, deadline: Deadline | None,
            status_of: Callable[[Exception], int] = errors.status_of, plane: DataPlane | None = None) -> Failure | None:
    """The refusal a prediction of ``name``/``ref`` meets before its body is read (its deadline passed, or
    its model or the worker is full: ``registry.serving.admission``), counted; None when it may go on.
    ``plane`` is the data plane to ask (default: the current app's)."""
    return (plane or domain.data_plane()).refusal(Call(name, ref, request_id, deadline), status_of=status_of)
