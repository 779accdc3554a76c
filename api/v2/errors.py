"""The Open Inference Protocol's error shape, decided here for every V2 route.

The body is ``{"error": "..."}`` (what tritonclient, KServe and MLServer read), plus the
problem+json members the rest of the API answers with. Problems are described by the one table in
``api/errors.py``; the protocol has no 422, so well-formed but invalid input is 400.
"""
from dataclasses import replace

import orjson
from flask import Response
from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema, fields
from werkzeug.exceptions import RequestEntityTooLarge

from api import errors
from api.settings import settings_of
from config import MB


class ProtocolError(Schema):
    """The protocol's error body; the problem+json members (type, title, status, detail) come beside it."""

    class Meta:
        unknown = INCLUDE

    error = fields.String(required=True, metadata={"description": "what went wrong and what to change"})


ERROR_STATUSES = {
    400: "malformed request or input the model cannot take (shape, datatype, feature names, values, outputs)",
    401: "a token is needed (REQUIRE_AUTH_FOR_READS) or the one sent is unknown",
    404: "no such model, version or alias",
    410: "the version is archived",
    413: "a body over MAX_PREDICT_MB or a batch over MAX_BATCH_ROWS",
}


def documented(blp: Blueprint, *statuses: int):
    """Document ``statuses`` of a view with the protocol's error body."""

    def decorator(view):
        for status in statuses:
            view = blp.alt_response(status, schema=ProtocolError, description=ERROR_STATUSES[status])(view)
        return view

    return decorator


def describe(exc: Exception, max_predict_bytes: int | None = None) -> errors.Problem:
    """The problem ``exc`` is, as the protocol words it (a body over ``max_predict_bytes``, by default the current
    app's MAX_PREDICT_MB, named with its limit)."""
    described = errors.describe(exc)
    if isinstance(exc, RequestEntityTooLarge):
        limit = (settings_of().limits.max_predict_bytes if max_predict_bytes is None else max_predict_bytes) / MB
        described = replace(
            described, detail=f"the request body is over the limit of {limit:g} MB (MAX_PREDICT_MB); send fewer rows per request"
        )
    if described.status == 422:
        described = replace(described, status=400, title="Bad Request")
    return described


def status_of(exc: Exception) -> int:
    """The status a V2 route answers ``exc`` with (the protocol has no 422: 400)."""
    status = errors.status_of(exc)
    return 400 if status == 422 else status


def register(blp: Blueprint) -> None:
    """Answer every error raised in ``blp``'s views in the protocol's shape."""
    blp.register_error_handler(Exception, protocol_error)


def protocol_error(exc: Exception) -> Response:
    """``exc`` as the protocol's ``{"error": ...}`` body, with the problem+json members beside it."""
    status, headers, body = protocol_parts(exc)
    return Response(body, status=status, headers=headers)


def protocol_parts(exc: Exception, max_predict_bytes: int | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
    """:func:`protocol_error`'s answer as WSGI's status line, headers and body (made without an app context when
    ``max_predict_bytes`` is given), logged when it is the server's fault."""
    described = errors.traced(errors.logged(describe(exc, max_predict_bytes), exc))
    body = orjson.dumps({"error": described.detail, **described.body()})
    return (errors.status_line(described.status),
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
             *described.response_headers().items()], body)
