"""The predict routes' one door: every request on them answered here, without Flask's per-request work.

A prediction is the request a serving fleet answers thousands of times a second, and for one row
Flask's request context, URL dispatch, hooks and view decorators cost more than the prediction
itself (``bench/floor.py``). This WSGI layer answers every request on the routes of the prediction
table (``api/prediction_routes.py``: ``POST /models/<name>/<ref>/predict`` and ``POST
/models/<name>/predict``, JSON or CSV, with a query such as ``?explain=margin`` or not; the Open
Inference Protocol's ``POST /v2/models/<name>[/versions/<version>]/infer``, JSON or binary), gzip or
not, with a token or without; no Flask view has those routes. It does what the app does for any
request, with the same functions: the request id (``api/request_ids.py``), the security headers
(``api/security_headers.py``), the caller's deadline (``api/deadlines.py``), the token and its
scoped rights where reads need one (:func:`api.auth.read_allowed`, whose failures the
failed-authentication limit counts), the body's ``Content-Encoding`` (``api/compression.py``), the
trace (``api/traces.py``). It calls the data plane as every edge does (:func:`api.answering.answer`:
routing, counting, the prediction log, shadow runs). The body is read once, and parsed once
(:func:`api.views.predict.given_of`, :func:`api.v2.views.given_of`); whatever fails is answered with
the problem ``api/errors.py`` describes, rendered as every JSON route renders it, or as the protocol's
error on its routes (``api/v2/errors.py``).

Every other request goes to Flask untouched. Every request's arrival is noted here first when the
server did not note it (``api/deadlines.py``).
"""
import time
from collections.abc import Callable, Iterable
from functools import lru_cache, partial

from flask import Flask
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import ClientDisconnected, HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.utils import get_content_type
from werkzeug.wrappers import Request
from werkzeug.wsgi import ClosingIterator, get_input_stream

from api import deadlines, domain, errors, lifecycle, rate_limits, request_ids, security_headers, traces
from api.answering import answer, refusal
from api.auth import read_allowed
from api.compression import decoded_body
from api.content import check_type
from api.errors import problem_parts
from api.prediction_routes import INFER, INFER_VERSION, PREDICT_DEFAULT, PREDICT_REF, url_map
from api.settings import settings_of
from api.v2 import errors as v2_errors
from api.v2 import views as v2
from api.views import predict
from registry import tracing
from registry.names import DEFAULT_ALIAS
from registry.serving.data_plane import DataPlane, Failure
from registry.serving.inputs import PredictionInput
from registry.serving.running import Prediction

ROUTES_KEPT = 4096  # paths whose route is remembered (a path per model and alias or version is typical)
OK = "200 OK"
SECURITY_HEADERS = tuple(security_headers.EVERYWHERE.items())
HSTS = (("Strict-Transport-Security", security_headers.HSTS),)

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
Target = tuple[str, str, str, str]  # a route's endpoint, the model's name, the ref, the URL rule
Parts = tuple[str, list[tuple[str, str]], bytes]  # an answer's status line, headers and body


class JsonApi:
    """How the predict routes read a request and answer: JSON or CSV (``api/views/predict.py``), problem+json."""

    status_of = staticmethod(errors.status_of)

    def __init__(self, app: Flask):
        self.app = app

    def given(self, environ: dict, data: bytes) -> PredictionInput:
        """What the request asks, from its body (decompressed), its type and its query."""
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        check_type(mimetype, predict.MEDIA_TYPES)
        query = Request(environ).args if environ.get("QUERY_STRING") else {}
        return predict.given_of(data, mimetype, query, settings_of(self.app).limits.max_batch_rows)

    def render(self, name: str, given: PredictionInput) -> Callable[[Prediction], predict.Rendered]:
        """What renders the answer: the prediction as JSON."""
        return predict.render

    def problem(self, exc: Exception) -> Parts:
        """``exc`` as the problem every JSON route answers it with."""
        return problem_parts(exc, self.app.json.dumps)


class OpenInference(JsonApi):
    """How the Open Inference Protocol's routes read a request and answer (``api/v2``): tensors, JSON or binary,
    and the protocol's error."""

    status_of = staticmethod(v2_errors.status_of)

    def given(self, environ: dict, data: bytes) -> PredictionInput:
        """The inference request in the body (decompressed), decoded when the answering version asks."""
        return v2.given_of(data, EnvironHeaders(environ).get(v2.HEADER_LENGTH), settings_of(self.app).limits.max_batch_rows)

    def render(self, name: str, given: PredictionInput) -> Callable[[Prediction], predict.Rendered]:
        """What renders the answer: output tensors."""
        return partial(v2.render, name, given)

    def problem(self, exc: Exception) -> Parts:
        """``exc`` as the protocol's error."""
        return v2_errors.protocol_parts(exc, settings_of(self.app).limits.max_predict_bytes)


class Dispatcher:
    """WSGI middleware over ``app``'s own WSGI app (``flask_wsgi``), which answers what it does not."""

    def __init__(self, app: Flask, flask_wsgi: WSGIApp):
        self.app = app
        self.flask_wsgi = flask_wsgi
        self.routes = url_map(app.url_map.converters).bind("localhost")
        json_api, open_inference = JsonApi(app), OpenInference(app)
        self.protocols = {PREDICT_REF.endpoint: json_api, PREDICT_DEFAULT.endpoint: json_api,
                          INFER.endpoint: open_inference, INFER_VERSION.endpoint: open_inference}
        self._target = lru_cache(maxsize=ROUTES_KEPT)(self._match)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        deadlines.arrived(environ)
        target = self._target(environ.get("PATH_INFO", ""))
        if target is None:
            return self.flask_wsgi(environ, start_response)
        return self._answer(environ, start_response, *target)

    def _match(self, path: str) -> Target | None:
        """The prediction route of ``path`` (as WSGI gives it: UTF-8 read as Latin-1); None for any other path."""
        try:
            rule, values = self.routes.match(path.encode("latin-1").decode("utf-8", "replace"), method="POST",
                                             return_rule=True)
        except HTTPException:  # no route, or a redirect (a trailing slash)
            return None
        return rule.endpoint, values["name"], values.get("ref", values.get("version", DEFAULT_ALIAS)), rule.rule

    def _answer(self, environ: dict, start_response: Callable, endpoint: str, name: str, ref: str,
                rule: str) -> Iterable[bytes]:
        started_ns = time.time_ns()  # the server span's start, when the request is traced
        request_id = request_ids.of_environ(environ)
        sent = (*SECURITY_HEADERS, *(HSTS if environ.get("wsgi.url_scheme") == "https" else ()),
                (request_ids.HEADER, request_id))
        protocol = self.protocols[endpoint]
        if environ["REQUEST_METHOD"] != "POST":
            return self._failed(start_response, protocol, Failure(MethodNotAllowed(["POST"]), 405, None, 0.0), sent)
        # No app context: nothing on the way to an answer or a failure reads one but a token's check (a load on a
        # miss pushes its own), and each costs a push and a pop with their signals and teardowns.
        plane = self._plane()
        lifecycle.of(self.app).start()
        served = traces.begin(environ, rule, started_ns)  # a refusal is traced too: its problem names the trace
        try:
            deadline = deadlines.of_environ(environ)
            # Read, not parsed: a refusal under a flood costs no parsing, and the connection stays usable (a
            # server closes one whose body it did not read, and the client may lose the answer).
            data = self._body(environ)
            self._authorize(environ, endpoint, name)
            refused = refusal(name, ref, request_id=request_id, deadline=deadline, status_of=protocol.status_of,
                              plane=plane)
            if refused is None:
                data = decoded_body(data, environ.get("HTTP_CONTENT_ENCODING"), self.app.config["MAX_CONTENT_LENGTH"])
                given = protocol.given(environ, data)
        except Exception as exc:  # answered here, once, as the app's error handler answers any route
            refused = Failure(exc, protocol.status_of(exc), None, 0.0)
        except BaseException:
            served.finish(500)  # never left current for the thread's next request
            raise
        if refused is not None:
            try:
                return self._failed(start_response, protocol, refused, (*sent, *traces.answered_with(served).items()))
            finally:
                served.finish(refused.status)
        return self._answered(environ, start_response, protocol, plane, name, ref, given, request_id, deadline, sent,
                              served)

    def _body(self, environ: dict) -> bytes:
        """The request's body as sent, within ``MAX_CONTENT_LENGTH`` (413 past it)."""
        limit = self.app.config["MAX_CONTENT_LENGTH"]
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit():  # sent in chunks, or no body: read as Werkzeug reads any request's
            return get_input_stream(environ, max_content_length=limit).read()
        if int(length) > limit:
            raise RequestEntityTooLarge()
        data = environ["wsgi.input"].read(int(length))
        if len(data) != int(length):
            raise ClientDisconnected()  # the client stopped sending
        return data

    def _authorize(self, environ: dict, endpoint: str, name: str) -> None:
        """Where reads need a token, the request's: valid, of a role that reads, with the route's right on
        ``name`` when scoped (``api/auth.py``, in an app context: the token may be looked up)."""
        if settings_of(self.app).access.require_auth_for_reads:
            with self.app.app_context():
                read_allowed(environ.get("HTTP_AUTHORIZATION"), address=rate_limits.address_of(environ),
                             endpoint=endpoint, method="POST", model=name)

    def _plane(self) -> DataPlane:
        """The app's data plane (made by ``create_app``, before any request)."""
        return self.app.extensions[domain.EXTENSION].data_plane

    def _answered(self, environ: dict, start_response: Callable, protocol: JsonApi, plane: DataPlane, name: str,
                  ref: str, given: PredictionInput, request_id: str, deadline, sent: tuple,
                  served: tracing.Served) -> Iterable[bytes]:
        """The data plane's answer to ``given``, or its failure, sent; the request's span (``served``) ended."""
        status = 500
        try:
            answered = answer(name, ref, given, headers=EnvironHeaders(environ), request_id=request_id,
                              render=protocol.render(name, given), deadline=deadline, status_of=protocol.status_of,
                              plane=plane)
            if isinstance(answered, Failure):
                response = self._failed(start_response, protocol, answered, (*sent, *traces.answered_with(served).items()))
                status = answered.status
                return response
            status = 200
        finally:
            served.finish(status)
        traced = traces.answered_with(served).items()
        start_response(OK, [
            ("Content-Type", get_content_type(answered.mimetype, "utf-8")), ("Content-Length", str(len(answered.body))),
            *answered.headers.items(), *sent, *traced,
        ])
        if answered.after is None:
            return [answered.body]
        return ClosingIterator([answered.body], answered.after)

    @staticmethod
    def _failed(start_response: Callable, protocol: JsonApi, failure: Failure, sent: tuple) -> Iterable[bytes]:
        """``failure`` answered as ``protocol`` answers an error, with the headers ``sent``."""
        status, headers, body = protocol.problem(failure.error)
        start_response(status, [*headers, *sent])
        return [body]


def init_app(app: Flask) -> None:
    """Answer ``app``'s predict routes here (install before any middleware that must see requests first, such
    as the proxy fix)."""
    app.wsgi_app = Dispatcher(app, app.wsgi_app)
