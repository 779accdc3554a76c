"""Which requests a worker's threads take last: the predictions of a model that holds its bound in the worker.

gunicorn's worker queues the requests that arrive faster than its threads take them
(``deploy/gthread_worker.py``). Under a flood, most of that queue is one model's: each of its requests, once
a thread takes it, waits for a slot a little or is refused (``registry/serving/admission.py``). First come,
first served, a quiet model's request (or ``/healthz``) waited behind all of them. The worker asks this order
about each request as it queues it, with the request's first bytes: a prediction (``POST`` on a route of
``api/prediction_routes.py``) of a model at its bound goes behind every other request waiting. Nothing is refused or
dropped here; the model's requests are answered (or refused) in their turn, and its caller's deadline counts
the wait (``X-Request-Timeout``, from the request's arrival).
"""
from flask import Flask

from api import domain
from api.prediction_routes import model_of
from registry.serving.admission import Admission
from registry.serving.runtime import Runtime


class QueueOrder:
    """The worker's ``queue_order``: a prediction of a model holding its bound in ``admission`` comes later. Asked by
    its worker's loop only, one request at a time."""

    def __init__(self, admission: Admission):
        self._admission = admission

    def active(self) -> bool:
        """Whether any request may go to the back now: not while so few predictions are in flight that no model
        holds its bound (then the worker reads no request's first bytes)."""
        return not self._admission.quiet

    def later(self, head: bytes) -> bool:
        """Whether the request that starts with ``head`` is a prediction of a model holding its bound."""
        model = model_of(head)
        return model is not None and self._admission.at_bound(model)


def init_app(app: Flask) -> None:
    """Give ``app`` the order its server's worker asks (``app.queue_order``), over its runtime's admission."""
    runtime: Runtime = app.extensions[domain.EXTENSION].runtime
    app.queue_order = QueueOrder(runtime.admission)
