"""What /openapi.json says beyond the schemas: bearer auth, and each operation's problem responses.

The auth decorators mark operations with their security (a read: a token only where the deployment sets
REQUIRE_AUTH_FOR_READS, so Swagger UI locks what needs one and nothing else); ``errors`` marks the statuses
only a view knows of (409, 410…); ``ProblemDocs`` adds the rest by rule and points every one at
problem+json (on the Open Inference Protocol's routes, at its ``{"error": …}`` body, as application/json).
"""
import re
import tomllib
from collections.abc import Callable
from copy import deepcopy
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from apispec import BasePlugin
from flask_smorest.utils import deepupdate

from api.errors import PROBLEM_JSON
from registry.names import ALIAS_NAME

BEARER = "bearerAuth"
NEEDS_TOKEN = [{BEARER: []}]
_READ = "x-read"  # marks a read: open unless the deployment sets REQUIRE_AUTH_FOR_READS
READ = {_READ: True}  # what the read decorator documents
_BY_NUMBER = "x-version-number"  # marks a path parameter ProblemDocs declares as a version number
PACKAGE = "model-registry"
_REST_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)  # a docstring's reST inline literal

MEANING = {
    400: "Malformed body: not JSON, or nested deeper than 64 levels",
    401: "Missing or invalid bearer token",
    403: "The token's role does not allow this",
    404: "No such model, version, alias or token",
    409: "Conflicts with the current state",
    410: "The version is archived",
    413: "Body, batch or metadata over its size limit",
    415: "Wrong content type",
    422: "Well-formed but invalid input; `errors` names the fields",
    429: "Too many failed authentications from this address (bad tokens or sign-ins); on a prediction, also its "
         "model has as many predictions in flight as it may (MAX_IN_FLIGHT_PER_MODEL). Retry-After says when to try again",
    503: "Not ready: the database is unavailable; on a prediction, also the worker is full (MAX_IN_FLIGHT) or the "
         "request's X-Request-Timeout passed before it could start. Retry-After says when to try again",
}
# gunicorn answers a request line over 4,094 bytes itself, before the app sees it, with an HTML page.
LINE_TOO_LONG = "RequestLineTooLong"

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details; `detail` says what to change",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "object", "description": "messages per field"},
        "trace_id": {"type": "string", "description": "the request's trace id (32 hex digits), on the prediction "
                                                      "routes when tracing is on"},
    },
}

V2_ERROR = "V2Error"
V2_ERROR_SCHEMA = {
    "type": "object",
    "description": "The Open Inference Protocol's error, with the problem details members beside it",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, **PROBLEM_SCHEMA["properties"]},
}


# The caller's deadline on the prediction routes (api/deadlines.py).
REQUEST_TIMEOUT = {
    "in": "header", "name": "X-Request-Timeout", "required": False,
    "schema": {"type": "string", "pattern": r"^ *([0-9]{1,12}(\.[0-9]{0,9})?|\.[0-9]{1,9}) *$", "example": "2.5"},
    "description": "seconds, counted from the request's arrival at the worker, within which the prediction must "
                   "start: past them it is 503 and nothing is computed; not a positive number of seconds: 400",
}


def package_version() -> str:
    """The service's version, as its package says it (``pyproject.toml`` in a checkout not installed)."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]


def document(view: Callable, doc: dict) -> Callable:
    """Merge ``doc`` into the operation's OpenAPI entry (as flask-smorest's ``Blueprint.doc`` does)."""
    view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
    view._apidoc["manual_doc"] = deepupdate(deepcopy(view._apidoc.get("manual_doc", {})), doc)
    return view


def errors(*statuses: int) -> Callable:
    """Declare the problem statuses a view answers besides those ``ProblemDocs`` derives."""
    return lambda view: document(view, {"responses": problem_responses(*statuses)})


def problem_responses(*statuses: int) -> dict:
    """An operation's ``responses`` for problem statuses it answers besides those ``ProblemDocs`` derives."""
    return {str(status): _name(status) for status in statuses}


def by_number(parameter: str = "ref") -> Callable:
    """Declare that the operation's ``parameter`` (a path part that reads also take as an alias) must
    be a version number here: writes never go through an alias."""
    return lambda view: document(view, {_BY_NUMBER: parameter})


class ProblemDocs(BasePlugin):
    """An apispec plugin: the bearer scheme, the problem responses, and which operation gives which;
    ``reads_need_token``: the deployment's REQUIRE_AUTH_FOR_READS (reads are open without it)."""

    def __init__(self, reads_need_token: bool = False):
        self.reads_need_token = reads_need_token

    def init_spec(self, spec):
        """Register the security scheme, the problem schema and one response per status."""
        self._spec = spec
        spec.components.security_scheme(BEARER, {"type": "http", "scheme": "bearer"})
        spec.components.schema("Problem", PROBLEM_SCHEMA)
        spec.components.schema(V2_ERROR, V2_ERROR_SCHEMA)
        for status, meaning in MEANING.items():
            content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
            spec.components.response(_name(status), {"description": meaning, "content": content})
            content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{V2_ERROR}"}}}
            spec.components.response(_v2_name(status), {"description": meaning, "content": content})
        spec.components.response(LINE_TOO_LONG, {
            "description": "Request line (method, path and query) over 4,094 bytes, answered by gunicorn",
            "content": {"text/html": {"schema": {"type": "string"}}},
        })

    def schema_helper(self, name, definition, **kwargs):
        """What a marshmallow schema's ``Meta.openapi`` adds to its JSON schema (rules across fields)."""
        schema = kwargs.get("schema")
        return dict(getattr(getattr(schema, "Meta", None), "openapi", {}))

    def path_helper(self, path=None, operations=None, parameters=None, **kwargs):
        """Give the path's ``alias`` parameter the pattern alias names follow (422 otherwise)."""
        for parameter in parameters or []:
            if isinstance(parameter, dict) and parameter.get("in") == "path" and parameter.get("name") == "alias":
                parameter.setdefault("schema", {})["pattern"] = ALIAS_NAME.pattern

    def operation_helper(self, path=None, operations=None, **kwargs):
        """Give each operation its statuses, all as problem+json (replacing flask-smorest's error shape)."""
        for operation in (operations or {}).values():
            _as_markdown(operation)
            read = operation.pop(_READ, False)
            if read and self.reads_need_token:
                operation["security"] = NEEDS_TOKEN
            number = operation.pop(_BY_NUMBER, None)
            if number is not None:
                operation.setdefault("parameters", []).append({
                    "in": "path", "name": number, "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                    "description": "a version number (an alias is refused with 422 here)",
                })
            responses = operation.setdefault("responses", {})
            responses.pop("default", None)
            if "{" in (path or "") or operation.get("parameters"):
                responses["414"] = LINE_TOO_LONG
            _name_property_names(self._spec.components.schemas)
            for status in _derived_statuses(path or "", operation, read):
                if (path or "").startswith("/v2"):  # the protocol has no 422: invalid input is 400
                    responses.setdefault(str(400 if status == 422 else status), _v2_name(400 if status == 422 else status))
                else:
                    responses[str(status)] = _name(status)


def _as_markdown(operation: dict) -> None:
    """The operation's texts as Swagger UI shows them, from the view's reST docstring: the summary as
    plain text (it is shown as written), the description as Markdown (``x`` becomes `x`)."""
    if "summary" in operation:
        operation["summary"] = _REST_LITERAL.sub(r"\1", operation["summary"])
    if "description" in operation:
        operation["description"] = _REST_LITERAL.sub(r"`\1`", operation["description"])


def _name_property_names(schemas: dict) -> None:
    """Turn each property's ``x-propertyNames`` (a field's metadata) into JSON Schema's ``propertyNames``."""
    for schema in schemas.values():
        for prop in schema.get("properties", {}).values():
            if "x-propertyNames" in prop:
                prop["propertyNames"] = prop.pop("x-propertyNames")


def _derived_statuses(path: str, operation: dict, read: bool) -> set[int]:
    statuses = set()
    if operation.get("security") or read:
        # A token (needed, or sent to an open read that shows more to some) or a lookup means the database
        # answers; bad tokens are limited.
        statuses |= {401, 429, 503}
    if operation.get("security"):
        statuses.add(403)
    if "{" in path:
        statuses.add(404)
    if "requestBody" in operation:
        statuses |= {400, 413, 415, 422}
    if any(p.get("in") == "query" for p in operation.get("parameters", []) if isinstance(p, dict)):
        statuses.add(422)
    return statuses


def _name(status: int) -> str:
    return f"Problem{status}"


def _v2_name(status: int) -> str:
    return f"{V2_ERROR}{status}"
