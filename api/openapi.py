"""What /openapi.json says beyond the schemas: bearer auth, and each operation's problem responses.

The auth decorators mark operations with their security; ``errors`` marks the statuses only a view
knows of (409, 410…); ``ProblemDocs`` adds the rest by rule and points every one at problem+json.
"""
from collections.abc import Callable
from copy import deepcopy

from apispec import BasePlugin
from flask_smorest.utils import deepupdate

from api.errors import PROBLEM_JSON

BEARER = "bearerAuth"
NEEDS_TOKEN = [{BEARER: []}]
TOKEN_IF_CONFIGURED = [{}, {BEARER: []}]  # open unless the deployment sets REQUIRE_AUTH_FOR_READS

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
    503: "Not ready: the database is unavailable",
}

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
    },
}


def document(view: Callable, doc: dict) -> Callable:
    """Merge ``doc`` into the operation's OpenAPI entry (as flask-smorest's ``Blueprint.doc`` does)."""
    view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
    view._apidoc["manual_doc"] = deepupdate(deepcopy(view._apidoc.get("manual_doc", {})), doc)
    return view


def errors(*statuses: int) -> Callable:
    """Declare the problem statuses a view answers besides those ``ProblemDocs`` derives."""
    return lambda view: document(view, {"responses": {str(s): _name(s) for s in statuses}})


class ProblemDocs(BasePlugin):
    """An apispec plugin: the bearer scheme, the problem responses, and which operation gives which."""

    def init_spec(self, spec):
        """Register the security scheme, the problem schema and one response per status."""
        spec.components.security_scheme(BEARER, {"type": "http", "scheme": "bearer"})
        spec.components.schema("Problem", PROBLEM_SCHEMA)
        for status, meaning in MEANING.items():
            content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
            spec.components.response(_name(status), {"description": meaning, "content": content})

    def operation_helper(self, path=None, operations=None, **kwargs):
        """Give each operation its statuses, all as problem+json (replacing flask-smorest's error shape)."""
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            responses.pop("default", None)
            for status in _derived_statuses(path or "", operation):
                responses[str(status)] = _name(status)


def _derived_statuses(path: str, operation: dict) -> set[int]:
    statuses = set()
    security = operation.get("security")
    if security:
        statuses |= {401, 503}  # a token or a lookup means the database answers
        if {} not in security:
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
