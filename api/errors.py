"""Every error becomes RFC 9457 problem+json here, and only here."""
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from itertools import islice

from flask import Flask, Response, current_app, json, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from registry import errors as domain
from registry import tracing
from registry.errors import ECHOED

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
UNPROCESSABLE = "Unprocessable input"

# Most specific class first: the first match wins.
DOMAIN_STATUS: list[tuple[type[domain.RegistryError], int, str]] = [
    (domain.Unauthorized, 401, "Unauthorized"),
    (domain.Forbidden, 403, "Forbidden"),
    (domain.NotFound, 404, "Not found"),
    (domain.Conflict, 409, "Conflict"),
    (domain.VersionArchived, 410, "Version archived"),
    (domain.BatchTooLarge, 413, "Batch too large"),
    # Refused for capacity before anything ran: the model's share (429) or the worker (503) is full, or the
    # caller's deadline passed while the request waited; each says when to try again.
    (domain.ModelBusy, 429, "Too Many Requests"),
    (domain.Overloaded, 503, "Service Unavailable"),
    # The caller closed its connection or its deadline passed before the change was committed: none was.
    (domain.CallerGone, 503, "Service Unavailable"),
    (domain.ArtifactTooLarge, 413, "Artifact too large"),
    (domain.InvalidArtifact, 422, "Invalid artifact"),
    (domain.NotExplainable, 422, "Not explainable"),
    (domain.InvalidInput, 422, UNPROCESSABLE),
    # A stored file that fails its sha256 check is never served. 500, not 503: retrying cannot
    # help, an operator has to restore the file (or re-upload the original bytes, which repairs it).
    (domain.ArtifactCorrupted, 500, "Artifact corrupted"),
    # Storage faults are the operator's to fix, not bugs: 507 needs space, 503 may pass (Retry-After).
    (domain.StoreFull, 507, "Insufficient Storage"),
    (domain.StoreUnavailable, 503, "Service Unavailable"),
    (domain.DatabaseFileGone, 503, "Service Unavailable"),
]

# A 503 says when to try again (RFC 9110 §10.2.3): time for an operator to remount or fix permissions.
RETRY_AFTER_SECONDS = 60
# A database that does not answer is most often restarting or failing over: sooner.
DATABASE_RETRY_AFTER_SECONDS = 5

# A detail longer than this (a caller's long value echoed, say) is cut there, and says how much was left out.
MAX_DETAIL = 2_000
MORE = "…"  # the key under which a bounded object of messages counts the entries it leaves out

DATABASE_UNAVAILABLE = "the database is unavailable (unreachable, locked or not migrated); try again shortly"

HTTP_DETAIL = {
    400: "the request body is not well-formed; send valid JSON (or the documented content type)",
    404: "no such route; see /docs for the API",
    405: "this method is not allowed on this route; see /docs for the API",
    413: "the request body is over the size limit",
    415: "unsupported content type",
    429: "too many failed authentications (bad tokens or sign-ins) from this address; wait for Retry-After "
         "seconds, and check the token",
}


class ProblemError(Exception):
    """An HTTP-level problem raised by the API layer itself (wrong content type, bad query …)."""

    def __init__(self, status: int, detail: str, errors: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors


@dataclass(frozen=True)
class Problem:
    """What went wrong, described once: each edge renders it in its own shape."""

    status: int
    title: str
    detail: str
    errors: dict | None = None
    headers: dict = field(default_factory=dict)
    members: dict = field(default_factory=dict)  # extension members (RFC 9457 §3.2): a refused move's "missing"

    def body(self) -> dict:
        """The problem+json members (RFC 9457)."""
        body = {"type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail}
        if self.errors:
            body["errors"] = self.errors
        return {**body, **self.members}

    def response_headers(self) -> dict:
        """Its headers, with the challenge every 401 carries."""
        if self.status == 401:
            return {"WWW-Authenticate": 'Bearer realm="model-registry"', **self.headers}
        return dict(self.headers)


def problem(status: int, title: str, detail: str, errors: dict | None = None, headers: dict | None = None) -> Response:
    """A problem+json response."""
    return render(Problem(status, title, detail, errors, headers or {}))


def render(described: Problem) -> Response:
    """``described`` as a problem+json response."""
    status, headers, body = written(described, json.dumps)
    return Response(body, status=status, headers=headers)


def written(described: Problem, dumps: Callable[[object], str]) -> tuple[str, list[tuple[str, str]], bytes]:
    """``described`` as WSGI's status line (Werkzeug's: ``422 UNPROCESSABLE ENTITY``), headers and body,
    its members written by ``dumps`` (the app's JSON provider's)."""
    body = dumps(described.body()).encode()
    headers = [("Content-Type", PROBLEM_JSON), ("Content-Length", str(len(body))),
               *described.response_headers().items()]
    return status_line(described.status), headers, body


def status_line(status: int) -> str:
    """WSGI's status line of ``status``, as Werkzeug writes it: ``422 UNPROCESSABLE ENTITY``."""
    return f"{status} {HTTP_STATUS_CODES.get(status, 'unknown').upper()}"


def register_error_handlers(app: Flask) -> None:
    """Answer every error raised in a view with problem+json (HTTP errors too: flask-smorest has its own)."""
    app.extensions["error_pages"] = {}
    for cls in (HTTPException, Exception):
        app.register_error_handler(cls, answer_error)


def render_as_pages(app: Flask, prefix: str, renderer: Callable[[Problem], Response]) -> None:
    """Answer errors of requests under ``prefix`` (unknown pages included) with ``renderer``: the
    dashboard's HTML pages, where a person reads them, instead of problem+json."""
    app.extensions["error_pages"][prefix] = renderer


def answer_error(exc: Exception) -> Response:
    """The answer to ``exc``: problem+json, or the page of its edge (logged when it is the server's fault)."""
    described = traced(logged(describe(exc), exc))
    for prefix, renderer in current_app.extensions.get("error_pages", {}).items():
        if request.path == prefix or request.path.startswith(prefix + "/"):
            return renderer(described)
    return render(described)


def problem_parts(exc: Exception, dumps: Callable[[object], str]) -> tuple[str, list[tuple[str, str]], bytes]:
    """The problem+json answer to ``exc`` as WSGI's status line, headers and body, the same bytes
    :func:`answer_error` answers the JSON routes with (``dumps``: the app's JSON provider's), made without an
    app context or a Werkzeug response: the prediction routes' door refuses a flood's excess with it, and each
    refusal would otherwise cost more than the prediction it refuses."""
    return written(traced(logged(describe(exc), exc)), dumps)


def describe(exc: Exception) -> Problem:
    """The problem ``exc`` is: domain errors by the table above, the API's own problems, Werkzeug's
    HTTP errors, an unavailable database; anything else is a 500. What it echoes is bounded (``bounded``)."""
    described = _described(exc)
    if isinstance(exc, HTTPException) or (described.errors is None and len(described.detail) <= MAX_DETAIL):
        return described  # bounded already (a 422 of the schemas: _http_problem), or small (UNEXPECTED stays itself)
    return replace(described, errors=bounded(described.errors) if described.errors else described.errors,
                   detail=_cut(described.detail))


def bounded(messages):
    """Marshmallow's (or the domain's) nested messages with at most ``ECHOED`` entries at each level: an
    object keeps its first ones and counts the rest under ``"…"`` (``"and 4,995 more"``), a list of
    messages likewise at its end. Every error echo goes through here, so none grows with the input."""
    if isinstance(messages, dict):
        # JSON keys are text anyway.
        kept = {str(key): bounded(value) for key, value in islice(messages.items(), ECHOED)}
        if len(messages) > ECHOED:
            kept[MORE] = f"and {len(messages) - ECHOED:,} more"
        return kept
    if isinstance(messages, list):
        kept = [bounded(value) for value in messages[:ECHOED]]
        return kept + [f"and {len(messages) - ECHOED:,} more"] if len(messages) > ECHOED else kept
    return _cut(messages) if isinstance(messages, str) else messages


def _cut(text: str) -> str:
    """``text``, or its first ``MAX_DETAIL`` characters and how many more there were."""
    if len(text) <= MAX_DETAIL:
        return text
    return f"{text[:MAX_DETAIL]} … and {len(text) - MAX_DETAIL:,} more characters"


def _described(exc: Exception) -> Problem:
    if isinstance(exc, domain.RegistryError):
        return _domain_problem(exc)
    if isinstance(exc, ProblemError):
        return Problem(exc.status, _title(exc.status), exc.detail, exc.errors)
    if isinstance(exc, OperationalError):
        return Problem(503, "Service Unavailable", DATABASE_UNAVAILABLE,
                       headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    if isinstance(exc, HTTPException) and (exc.code or 500) < 500:
        return _http_problem(exc)
    return UNEXPECTED


def logged(described: Problem, exc: Exception) -> Problem:
    """Log ``exc`` when ``described`` is the server's side of things; ``described`` unchanged."""
    if described is UNEXPECTED:
        log.exception("unhandled error", exc_info=exc)
    elif isinstance(exc, domain.Overloaded):
        pass  # a refusal under load is counted (registry_admission_refused_total); a line each would flood the log
    elif isinstance(exc, OperationalError):
        log.error("database unavailable: %s", exc.orig if exc.orig is not None else exc)
    elif described.status >= 500:
        log.error("%s: %s", described.title, described.detail)
    return described


def traced(described: Problem) -> Problem:
    """``described`` with the ``trace_id`` of the request's trace, when the request is traced (a prediction
    route's, with tracing on), so that a caller can quote it; unchanged otherwise."""
    found = tracing.trace_id()
    return described if found is None else replace(described, members={**described.members, "trace_id": found})


def status_of(exc: Exception) -> int:
    """The status ``exc`` is answered with (for counting answers by status)."""
    return describe(exc).status


UNEXPECTED = Problem(500, "Internal Server Error", "an unexpected error occurred; it has been logged")


def _domain_problem(exc: domain.RegistryError) -> Problem:
    for cls, status, title in DOMAIN_STATUS:
        if isinstance(exc, cls):
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}
            members = {"missing": exc.missing} if isinstance(exc, domain.PolicyRefused) else {}
            if isinstance(exc, domain.Overloaded):
                headers, members = {"Retry-After": str(exc.retry_after)}, {"reason": exc.reason}
            return Problem(status, title, exc.detail, exc.errors, headers, members)
    return UNEXPECTED


def _http_problem(exc: HTTPException) -> Problem:
    status = exc.code or 500
    errors = _webargs_messages(exc)
    errors = bounded(errors) if errors else errors  # before the detail says them, so it names only those kept
    detail = describe_errors(errors) if errors else HTTP_DETAIL.get(status, exc.description or exc.name)
    headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else {}
    if getattr(exc, "retry_after", None) is not None:  # a 429 (or 503) that says when to try again
        headers["Retry-After"] = str(exc.retry_after)
    return Problem(status, _title(status), detail, errors, headers)


def _webargs_messages(exc: HTTPException) -> dict | None:
    """Field errors that flask-smorest/webargs attach to the 422s they raise."""
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if not messages:
        return None
    if len(messages) == 1:  # keyed by location ("json", "query"…): the caller cares about fields
        messages = next(iter(messages.values()))
    # "errors" is always an object; a message about the body as a whole goes under "body".
    return messages if isinstance(messages, dict) else {"body": messages}


def describe_errors(errors: dict) -> str:
    """Marshmallow's nested messages as one line: ``metrics.r2: must be a finite number; tags: …``."""
    return "; ".join(f"{path}: {message}" for path, message in _flatten(errors, ""))


def _flatten(messages, path: str) -> list[tuple[str, str]]:
    if isinstance(messages, dict):
        pairs = []
        for key, value in messages.items():
            if key == "_schema":  # marshmallow's key for the body (or object) as a whole
                key = "body"
            # A Dict field reports {"<entry>": {"key"|"value": [...]}}: the entry is the place; so is the
            # object whose entries a bounded one counts.
            inner = path if key in ("key", "value", MORE) and path else f"{path}.{key}" if path else str(key)
            pairs += _flatten(value, inner)
        return pairs
    if isinstance(messages, list):
        return [pair for item in messages for pair in _flatten(item, path)]
    return [(path or "body", str(messages))]


def _title(status: int) -> str:
    return UNPROCESSABLE if status == 422 else HTTPStatus(status).phrase
