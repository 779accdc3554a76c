"""The prediction routes of the HTTP API, in one table: each route's endpoint and URL rule.

Every place that has to recognise a prediction reads it here: the dispatcher answers every one of them, matched
by their :func:`url_map` (``api/fast_predict.py``; no Flask view has them, and the OpenAPI document describes them
from it too), the scoped tokens' rights name their endpoints
(``api/rights.py``), and the worker's queue order matches a request's first line with :data:`REQUEST_LINE`,
made from the same rules (``api/queue_order.py``).
"""
import re
from dataclasses import dataclass

from werkzeug.routing import Map, Rule

from registry.names import MODEL_NAME


@dataclass(frozen=True)
class PredictionRoute:
    """A prediction route: its endpoint and its URL rule (``POST`` only)."""

    endpoint: str
    rule: str


PREDICT_REF = PredictionRoute("predict.predict_ref", "/models/<name>/<ref>/predict")  # pinned or aliased
PREDICT_DEFAULT = PredictionRoute("predict.predict_default", "/models/<name>/predict")  # production
INFER = PredictionRoute("v2.infer", "/v2/models/<name>/infer")
INFER_VERSION = PredictionRoute("v2.infer_version", "/v2/models/<name>/versions/<version>/infer")
ROUTES = (PREDICT_REF, PREDICT_DEFAULT, INFER, INFER_VERSION)

_PLACEHOLDER = re.compile(r"<([^<>]+)>")
_NAME = "(" + MODEL_NAME.pattern.strip("^$") + ")"  # the one group of each rule: the model's name
_SEGMENT = "[^/?# ]+"


def _request_line_of(rule: str) -> str:
    """The pattern of ``rule`` in a request line: ``<name>`` a model name (captured), any other placeholder a
    path segment."""
    parts = _PLACEHOLDER.split(rule)  # text, placeholder, text, …
    return "".join(re.escape(part) if index % 2 == 0 else (_NAME if part == "name" else _SEGMENT)
                   for index, part in enumerate(parts))


# A prediction's request line, as a server reads its first bytes: ``POST /models/housing/predict `` (or ``?``).
REQUEST_LINE = re.compile(
    ("POST (?:" + "|".join(_request_line_of(route.rule) for route in ROUTES) + ")[? ]").encode("ascii"))


def model_of(head: bytes) -> str | None:
    """The model of the prediction whose request starts with ``head``; None for any other request."""
    found = REQUEST_LINE.match(head)
    if found is None:
        return None
    return next(group for group in found.groups() if group is not None).decode("ascii")


def url_map(converters: dict | None = None) -> Map:
    """The routes' rules (``POST`` only) as a URL map, with an app's ``converters``."""
    # No defaults, as a blueprint's rule has them (flask-smorest reads them to document the rule).
    return Map([Rule(route.rule, endpoint=route.endpoint, methods=["POST"], defaults={}) for route in ROUTES],
               converters=converters)
