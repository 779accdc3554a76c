"""The prediction routes of the HTTP API, in one table: each route's endpoint and URL rule.

Every place that has to recognise a prediction reads it here: the views register their rules from it
(``api/views/predict.py``, ``api/v2/views.py``), the fast path answers the routes it marks ``fast``
(``api/fast_predict.py``), the traces and the scoped tokens' rights name their endpoints (``api/traces.py``,
``api/rights.py``), and the worker's queue order matches a request's first line with :data:`REQUEST_LINE`,
made from the same rules (``api/queue_order.py``).
"""
import re
from dataclasses import dataclass

from registry.names import MODEL_NAME


@dataclass(frozen=True)
class PredictionRoute:
    """A prediction route: its Flask endpoint, its URL rule (``POST`` only), and whether the fast path answers
    its plain JSON calls."""

    endpoint: str
    rule: str
    fast: bool = False


PREDICT_REF = PredictionRoute("predict.predict_ref", "/models/<name>/<ref>/predict", fast=True)  # pinned or aliased
PREDICT_DEFAULT = PredictionRoute("predict.predict_default", "/models/<name>/predict", fast=True)  # production
INFER = PredictionRoute("v2.infer", "/v2/models/<name>/infer")
INFER_VERSION = PredictionRoute("v2.infer_version", "/v2/models/<name>/versions/<version>/infer")
ROUTES = (PREDICT_REF, PREDICT_DEFAULT, INFER, INFER_VERSION)

ENDPOINTS = frozenset(route.endpoint for route in ROUTES)
FAST_ENDPOINTS = frozenset(route.endpoint for route in ROUTES if route.fast)

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
