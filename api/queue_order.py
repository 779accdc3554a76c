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
import time
from collections.abc import Callable

from flask import Flask

from api import domain
from api.prediction_routes import model_of
from registry.serving.admission import Admission
from registry.serving.runtime import Runtime


class QueueOrder:
    """The worker's ``queue_order``: a prediction of a model holding its bound in ``admission`` comes later. Asked by
    its process's loop only (a worker's, or its back process's), one request at a time."""

    def __init__(self, admission: Admission, serve_behind: Callable[[int], None] = lambda nice: None):
        self._admission = admission
        self._serve_behind = serve_behind
        # model -> until when its predictions go last: models found at their bound, so loaded ones (a bounded few)
        self._held: dict[str, float] = {}

    def active(self) -> bool:
        """Whether any request may go to the back now: not while so few predictions are in flight that no model
        holds its bound and none is held (then the worker reads no request's first bytes)."""
        return not self._admission.quiet or bool(self._held)

    def later(self, head: bytes, hold_seconds: float = 0.0) -> bool:
        """Whether the request that starts with ``head`` is a prediction of a model holding its bound, or of one held:
        with ``hold_seconds``, a model found at its bound is held that long, so that all of a flood's requests go
        later, not only those beyond the bound (a worker with a back process hands them all to it,
        ``deploy/back_lane.py``)."""
        model = model_of(head)
        if model is None:
            return False
        now = time.monotonic()
        if self._admission.at_bound(model):
            if hold_seconds > 0:
                self._held[model] = now + hold_seconds
            return True
        for name in [name for name, until in self._held.items() if until <= now]:
            del self._held[name]
        return model in self._held

    def hold(self, head: bytes, hold_seconds: float) -> None:
        """Hold the model of the prediction that starts with ``head`` later for the next ``hold_seconds`` (a back
        process holds the model of each request its worker hands it, so that the connection's next request of that
        model stays there); anything else is not held."""
        model = model_of(head)
        if model is not None:
            self._held[model] = max(self._held.get(model, 0.0), time.monotonic() + hold_seconds)

    def serve_behind(self, nice: int, in_flight: Callable[[int], None]) -> None:
        """Called in a worker's back process (at ``nice``), which takes what the worker's order puts later: it
        serves them as :meth:`registry.serving.runtime.Runtime.serve_behind` says, and tells ``in_flight`` its
        predictions in flight, for its worker's shedding."""
        self._serve_behind(nice)
        self._admission.publish_in_flight(in_flight)

    def serve_before(self, back_in_flight: Callable[[], int]) -> None:
        """Called in a worker with a back process, whose predictions in flight ``back_in_flight()`` says: the worker
        sheds its shadow and mirror runs by the pair's predictions together."""
        self._admission.shed_with(back_in_flight)


def init_app(app: Flask) -> None:
    """Give ``app`` the order its server's worker asks (``app.queue_order``), over its runtime's admission."""
    runtime: Runtime = app.extensions[domain.EXTENSION].runtime
    app.queue_order = QueueOrder(runtime.admission, runtime.serve_behind)
