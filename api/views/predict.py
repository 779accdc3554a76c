"""The predict routes' logic: what a body asks, the answer's JSON, and the routes' OpenAPI operations.

The routes (by version number, by alias, and the ``production`` default) are answered by the prediction
dispatcher (``api/fast_predict.py``), not by Flask views: it reads the body once and calls :func:`given_of`.
"""
from collections.abc import Mapping

import orjson

from api.answering import Rendered
from api.content import parse_predict_body
from api.errors import ProblemError
from api.openapi import READ, REQUEST_TIMEOUT, problem_responses
from api.prediction_routes import PREDICT_DEFAULT, PREDICT_REF, PredictionRoute
from api.schemas.predictions import PredictionOut
from registry.serving.explanations import SPACES, ExplainAsk, explain_asked
from registry.serving.inputs import CsvInput, JsonInput, PredictionInput
from registry.serving.running import Prediction

QUERY_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
MEDIA_TYPES = ("application/json", "text/csv")  # what a predict body may be sent as (415 otherwise)
TAG = ("predict", "Predictions")  # the OpenAPI tag of the routes, and its description

_REQUEST_BODY_DOC = {
    "parameters": [REQUEST_TIMEOUT],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "example": {"instances": [[0.1, 2.0, 3.5]]},
                "schema": {
                    "type": "object",
                    "description": "one of instances (rows or objects), dataframe_split, dataframe_records; "
                    "optional return_proba, and explain (each row's attributions per input column): true, or "
                    "{\"space\": \"prediction\" | \"probability\" | \"margin\"} to name the space",
                },
            },
            "text/csv": {"schema": {"type": "string"}, "example": "x0,x1,x2\n0.1,2.0,3.5\n"},
        },
    }
}


def _operation(summary: str, *problems: int) -> dict:
    """A predict route's OpenAPI operations (its ``POST``), as flask-smorest would document a view of them;
    ``problems``: its statuses besides those ``ProblemDocs`` derives."""
    return {"post": {
        "summary": summary, "tags": [TAG[0]], **READ, **_REQUEST_BODY_DOC,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": PredictionOut}}},
                      **problem_responses(*problems)},
    }}


OPERATIONS: dict[PredictionRoute, dict] = {
    PREDICT_REF: _operation("Predict with a pinned version (``/models/housing/3/predict``) or an alias.", 410),
    PREDICT_DEFAULT: _operation("Predict with the ``production`` alias."),
}


def given_of(data: bytes, mimetype: str, query: Mapping[str, str], max_rows: int) -> PredictionInput:
    """What a predict request asks, from its body ``data`` (decompressed) of type ``mimetype`` (one of
    :data:`MEDIA_TYPES`) and its ``query`` (``?proba=true``, ``?explain=margin``): a JSON body is parsed here."""
    if mimetype == "text/csv":
        return CsvInput(data.decode("utf-8", "replace"), max_rows, _flag(None, "return_proba", "proba", query),
                        _explain(None, query))
    body = parse_predict_body(data, max_rows)
    return JsonInput(body, max_rows, _flag(body, "return_proba", "proba", query), _explain(body, query))


def render(result: Prediction) -> Rendered:
    """The JSON answer of a prediction: ``{"model", "version", "predictions", …}``."""
    return orjson.dumps(result.to_dict()), "application/json", {}


def body_flag(body: object, field: str) -> bool:
    """A true-or-false field of a JSON body (``return_proba``): false when absent."""
    value = body.get(field, False) if isinstance(body, dict) else False
    if not isinstance(value, bool):
        raise ProblemError(422, f"{field} must be true or false")
    return value


def body_explain(body: object) -> ExplainAsk | None:
    """What a JSON body's ``explain`` asks: ``true`` or ``{"space": …}`` (an InvalidInput says what to send)."""
    return explain_asked(body.get("explain") if isinstance(body, dict) else None)


def _flag(body: object, field: str, parameter: str, query: Mapping[str, str]) -> bool:
    """``field`` from the body, or ``?parameter=true``."""
    value = body_flag(body, field)
    if not query:
        return value
    flag = query.get(parameter, "false").lower()
    if flag not in QUERY_BOOLEANS:
        raise ProblemError(422, f"{parameter} must be true or false, not {flag!r}")
    return value or QUERY_BOOLEANS[flag]


def _explain(body: object, query: Mapping[str, str]) -> ExplainAsk | None:
    """``explain`` from the body, or ``?explain=true`` (or a space: ``?explain=margin``); the two may not name
    different spaces."""
    asked = body_explain(body)
    if "explain" not in query:
        return asked
    flag = query["explain"].lower()
    if flag in QUERY_BOOLEANS:
        by_query = explain_asked(QUERY_BOOLEANS[flag])
    elif flag in SPACES:
        by_query = ExplainAsk(flag)
    else:
        shown = flag if len(flag) <= 40 else flag[:37] + "..."
        raise ProblemError(422, f"explain must be true, false or a space ({', '.join(SPACES)}), not {shown!r}")
    if asked is None or by_query is None:
        return asked or by_query
    if asked.space and by_query.space and asked.space != by_query.space:
        raise ProblemError(422, f"explain asks for {asked.space} in the body and {by_query.space} in the query; "
                                "name one space")
    return ExplainAsk(asked.space or by_query.space)
