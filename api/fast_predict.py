"""The predict routes' fast path: a plain JSON prediction answered without Flask's per-request work.

A prediction is the request a serving fleet answers thousands of times a second, and for one row
Flask's request context, URL dispatch, hooks and view decorators cost more than the prediction
itself (``bench/floor.py``). This WSGI layer answers the plain case of ``POST
/models/<name>/<ref>/predict`` and ``POST /models/<name>/predict``: a JSON body of known length, no
``Content-Encoding``, no query string, reads open to all (so no token to check, and nothing the
failed-authentication limit refuses). It calls the data plane as the view does
(:func:`api.answering.answer`: routing, counting, the prediction log, shadow runs), traces it as the
view is traced (``api/traces.py``), and sends the same headers (security headers, the request id, the
version and route, the ``traceparent``). A failure the data plane
met, and a body that does not decode or that asks what cannot be given, is answered here, once, with
the problem ``api/errors.py`` describes and renders for every JSON route: the body is read and parsed
once, and the request is never answered again by Flask.

Everything else goes to Flask untouched (an ``X-Request-Timeout`` that is not a number of seconds is
handed over, its body unread, for the view to refuse in the same words). Every
request's arrival is noted here first when the server did not note it (``api/deadlines.py``).
"""
import io
import time
from collections.abc import Callable, Iterable
from functools import lru_cache

from flask import Flask
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException
from werkzeug.utils import get_content_type
from werkzeug.wsgi import ClosingIterator

from api import deadlines, domain, errors, lifecycle, request_ids, security_headers, traces
from api.answering import answer, refusal
from api.content import parse_predict_body
from api.errors import ProblemError, problem_parts
from api.prediction_routes import FAST_ENDPOINTS
from api.settings import settings_of
from api.views.predict import body_explain, body_flag, render
from registry import tracing
from registry.errors import InvalidInput
from registry.names import DEFAULT_ALIAS
from registry.serving.data_plane import DataPlane, Failure
from registry.serving.inputs import JsonInput

ROUTES_KEPT = 4096  # paths whose route is remembered (a path per model and alias or version is typical)
OK = "200 OK"
SECURITY_HEADERS = tuple(security_headers.EVERYWHERE.items())
HSTS = (("Strict-Transport-Security", security_headers.HSTS),)

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class FastPredict:
    """WSGI middleware over ``app``'s own WSGI app (``flask_wsgi``), which answers what it does not."""

    def __init__(self, app: Flask, flask_wsgi: WSGIApp):
        self.app = app
        self.flask_wsgi = flask_wsgi
        self._target = lru_cache(maxsize=ROUTES_KEPT)(self._match)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        deadlines.arrived(environ)
        target = self._plain(environ)
        if target is None:
            return self.flask_wsgi(environ, start_response)
        return self._answer(environ, start_response, *target)

    def _plain(self, environ: dict) -> tuple[str, str, str, int] | None:
        """(name, ref, URL rule, body length) of a plain JSON prediction; None for anything Flask should see."""
        config = self.app.config
        if (environ["REQUEST_METHOD"] != "POST" or environ.get("QUERY_STRING") or environ.get("HTTP_CONTENT_ENCODING")
                or settings_of(self.app).access.require_auth_for_reads
                or environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != "application/json"):
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > config["MAX_CONTENT_LENGTH"]:
            return None
        target = self._target(environ.get("PATH_INFO", ""))
        return None if target is None else (*target, int(length))

    def _match(self, path: str) -> tuple[str, str, str] | None:
        """(name, ref, URL rule) when ``path`` is a predict route's, matched by the app's own URL map."""
        if not path.isascii():
            return None  # Flask decodes such paths itself
        try:
            rule, values = self.app.url_map.bind("localhost").match(path, method="POST", return_rule=True)
        except HTTPException:  # no route, another method, or a redirect (a trailing slash)
            return None
        if rule.endpoint not in FAST_ENDPOINTS:
            return None
        return values["name"], values.get("ref", DEFAULT_ALIAS), rule.rule

    def _answer(self, environ: dict, start_response: Callable, name: str, ref: str, rule: str,
                length: int) -> Iterable[bytes]:
        started_ns = time.time_ns()  # the server span's start, when the request is traced
        try:
            deadline = deadlines.of_environ(environ)
        except ProblemError:
            return self.flask_wsgi(environ, start_response)  # the view refuses it in the same words
        request_id = request_ids.of_environ(environ)
        sent = (*SECURITY_HEADERS, *(HSTS if environ.get("wsgi.url_scheme") == "https" else ()),
                (request_ids.HEADER, request_id))
        data = environ["wsgi.input"].read(length)
        if len(data) != length:  # the client stopped sending: Flask refuses what came, as for any route
            environ["wsgi.input"] = io.BytesIO(data)
            return self.flask_wsgi(environ, start_response)
        # Read, not parsed: a refusal under a flood costs no parsing, and the connection stays usable (a
        # server closes one whose body it did not read, and the client may lose the answer). No app context:
        # nothing on the way to an answer or a failure reads one (a load on a miss pushes its own), and each costs
        # a push and a pop with their signals and teardowns.
        plane = self._plane()
        lifecycle.of(self.app).start()
        served = traces.begin(environ, rule, started_ns)  # a refusal is traced too: its problem names the trace
        max_rows = settings_of(self.app).limits.max_batch_rows
        try:
            refused = refusal(name, ref, request_id=request_id, deadline=deadline, plane=plane)
            if refused is None:
                body = parse_predict_body(data, max_rows)
                given = JsonInput(body, max_rows, body_flag(body, "return_proba"), body_explain(body))
        except (ProblemError, InvalidInput) as exc:  # the body refused here, once: no view parses it again
            refused = Failure(exc, errors.status_of(exc), None, 0.0)
        except BaseException:
            served.finish(500)  # never left current for the thread's next request
            raise
        if refused is not None:
            try:
                return self._failed(start_response, refused, (*sent, *served.headers().items()))
            finally:
                served.finish(refused.status)
        return self._answered(environ, start_response, plane, name, ref, given, request_id, deadline, sent, served)

    def _plane(self) -> DataPlane:
        """The app's data plane (made by ``create_app``, before any request)."""
        return self.app.extensions[domain.EXTENSION].data_plane

    def _answered(self, environ: dict, start_response: Callable, plane: DataPlane, name: str, ref: str,
                  given: JsonInput, request_id: str, deadline, sent: tuple, served: tracing.Served) -> Iterable[bytes]:
        """The data plane's answer to ``given``, or its failure, sent; the request's span (``served``) ended."""
        status = 500
        try:
            answered = answer(name, ref, given, headers=EnvironHeaders(environ), request_id=request_id,
                              render=render, deadline=deadline, plane=plane)
            if isinstance(answered, Failure):
                response = self._failed(start_response, answered, (*sent, *served.headers().items()))
                status = answered.status
                return response
            status = 200
        finally:
            served.finish(status)
        traced = served.headers().items()
        start_response(OK, [
            ("Content-Type", get_content_type(answered.mimetype, "utf-8")), ("Content-Length", str(len(answered.body))),
            *answered.headers.items(), *sent, *traced,
        ])
        if answered.after is None:
            return [answered.body]
        return ClosingIterator([answered.body], answered.after)

    def _failed(self, start_response: Callable, failure: Failure, sent: tuple) -> Iterable[bytes]:
        """``failure`` answered with the problem every JSON route answers it with, and the headers ``sent``."""
        status, headers, body = problem_parts(failure.error, self.app.json.dumps)
        start_response(status, [*headers, *sent])
        return [body]


def init_app(app: Flask) -> None:
    """Answer ``app``'s plain predictions on the fast path (install before any middleware that must
    see requests first, such as the proxy fix)."""
    app.wsgi_app = FastPredict(app, app.wsgi_app)
