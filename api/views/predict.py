"""Prediction routes: by version number, by alias, and the ``production`` default."""
import orjson
from flask import Response, request
from flask_smorest import Blueprint

from api import deadlines, request_ids
from api.answering import Rendered, respond
from api.auth import reads
from api.content import accepts, json_body
from api.errors import ProblemError
from api.openapi import REQUEST_TIMEOUT
from api.prediction_routes import PREDICT_DEFAULT, PREDICT_REF
from api.schemas.predictions import PredictionOut
from api.settings import settings_of
from registry.names import DEFAULT_ALIAS
from registry.serving.explanations import SPACES, ExplainAsk, explain_asked
from registry.serving.inputs import CsvInput, JsonInput
from registry.serving.running import Prediction

QUERY_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

blp = Blueprint("predict", __name__, description="Predictions")

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


@blp.route(PREDICT_REF.rule, methods=["POST"])
@reads
@accepts("application/json", "text/csv")
@blp.doc(**_REQUEST_BODY_DOC)
@blp.response(200, PredictionOut)
def predict_ref(name, ref):
    """Predict with a pinned version (``/models/housing/3/predict``) or an alias."""
    return _answer(name, ref)


@blp.route(PREDICT_DEFAULT.rule, methods=["POST"])
@reads
@accepts("application/json", "text/csv")
@blp.doc(**_REQUEST_BODY_DOC)
@blp.response(200, PredictionOut)
def predict_default(name):
    """Predict with the ``production`` alias."""
    return _answer(name, DEFAULT_ALIAS)


def _answer(name: str, ref: str) -> Response:
    max_rows = settings_of().limits.max_batch_rows
    if request.mimetype == "text/csv":
        given = CsvInput(request.get_data(as_text=True), max_rows, _flag(None, "return_proba", "proba"),
                         _explain(None))
    else:
        body = json_body()
        given = JsonInput(body, max_rows, _flag(body, "return_proba", "proba"), _explain(body))
    return respond(name, ref, given, headers=request.headers, request_id=request_ids.current(), render=render,
                   deadline=deadlines.current())


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


def _flag(body: object, field: str, parameter: str) -> bool:
    """``field`` from the body, or ``?parameter=true``."""
    value = body_flag(body, field)
    if not request.query_string:
        return value
    flag = request.args.get(parameter, "false").lower()
    if flag not in QUERY_BOOLEANS:
        raise ProblemError(422, f"{parameter} must be true or false, not {flag!r}")
    return value or QUERY_BOOLEANS[flag]


def _explain(body: object) -> ExplainAsk | None:
    """``explain`` from the body, or ``?explain=true`` (or a space: ``?explain=margin``); the two may not name
    different spaces."""
    asked = body_explain(body)
    if "explain" not in request.args:
        return asked
    flag = request.args["explain"].lower()
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
