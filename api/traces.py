"""Traces at the HTTP edge: the server span of each prediction request, W3C ``traceparent`` in and out.

With tracing on (``Settings.tracing``: an exporter or an OTLP endpoint named by the standard
variables) each worker sends its spans (:mod:`registry.tracing`, started by the app's lifecycle after the
fork); every prediction request, our routes' or V2's (all answered by ``api/fast_predict.py``), gets a
server span named by its route (``POST /models/{name}/{ref}/predict``), the child of the caller's span when it
sent a ``traceparent``, and answers with the ``traceparent`` of that span. The data plane's steps are
its children. Off, nothing here runs.
"""
import re
from importlib.metadata import entry_points

from flask import Flask
from opentelemetry.propagators.textmap import Getter

from api import lifecycle
from api.settings import settings_of
from config import Tracing
from registry import tracing

_PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_ROUTES: dict[str, str] = {}  # a URL rule's route (``/models/{name}/{ref}/predict``), by the rule: a few
SAMPLERS = ("always_on", "always_off", "traceidratio")  # the SDK's, each also parentbased_ (OTEL_TRACES_SAMPLER)
_ENVIRON_NAMES = {"traceparent": "HTTP_TRACEPARENT", "tracestate": "HTTP_TRACESTATE"}  # read on every request


class EnvironGetter(Getter[dict]):
    """Reads a header (``traceparent``, ``tracestate``…) from a WSGI environ."""

    def get(self, carrier: dict, key: str) -> list[str] | None:
        """The header's value, as the propagators read it."""
        name = _ENVIRON_NAMES.get(key)
        if name is None:
            name = "HTTP_" + key.upper().replace("-", "_")
        value = carrier.get(name)
        return None if value is None else [value]

    def keys(self, carrier: dict) -> list[str]:
        """The request's header names."""
        return [key[5:].lower().replace("_", "-") for key in carrier if key.startswith("HTTP_")]


ENVIRON = EnvironGetter()


def init_app(app: Flask) -> None:
    """With tracing configured: start each worker's tracer with its lifecycle (stopped, its spans sent, as
    the worker goes). A setting this service cannot send
    to stops the start with one line."""
    given = settings_of(app).tracing
    exporters = given.exporters
    if not exporters:
        return
    refused = refusal(given)
    if refused:
        raise SystemExit(refused)
    tracing.prepare(exporters)
    lifecycle.of(app).add("traces", start=lambda: tracing.start(exporters), stop=tracing.stop)


def refusal(given: Tracing) -> str | None:
    """Why this service cannot send spans as configured (an exporter, an OTLP protocol, a sampler, a sampler's
    ratio or a propagator that the SDK would ignore or fail on); None when it can."""
    exporters, protocol, sampler = given.exporters, given.otlp_protocol, given.sampler
    unknown = [name for name in exporters if name not in tracing.EXPORTERS]
    if unknown:
        return (f"OTEL_TRACES_EXPORTER={','.join(exporters)}: {', '.join(unknown)} is not available here; use "
                f"{' or '.join(tracing.EXPORTERS)} (or none)")
    if "otlp" in exporters and protocol != "http/protobuf":
        return (f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: this service sends OTLP over HTTP only; set http/protobuf "
                "(a collector's port 4318)")
    if sampler.removeprefix("parentbased_") not in SAMPLERS:
        return (f"OTEL_TRACES_SAMPLER={sampler}: not available here; use {', '.join(SAMPLERS)} or their "
                "parentbased_ forms")
    if sampler.endswith("traceidratio") and given.sampler_arg:  # unset: 1.0
        try:
            ratio = float(given.sampler_arg)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            return f"OTEL_TRACES_SAMPLER_ARG={given.sampler_arg}: {sampler} needs a ratio between 0 and 1"
    shipped = {point.name for point in entry_points(group="opentelemetry_propagator")} | {"none"}
    named = [part.strip() for part in given.propagators.split(",") if part.strip()]
    others = [name for name in named if name.lower() not in shipped]
    if others:
        return (f"OTEL_PROPAGATORS={given.propagators}: {', '.join(others)} is not available here; "
                f"use {', '.join(sorted(shipped))}")
    return None


def answered_with(served: tracing.Served) -> dict[str, str]:
    """The W3C ``traceparent`` (and ``tracestate``) of a request's span (``served``), to answer with; none when off.
    Written as the SDK's trace-context propagator writes them, without its per-call context lookups."""
    found = served.span.get_span_context()
    if not found.is_valid:
        return {}
    headers = {"traceparent": f"00-{found.trace_id:032x}-{found.span_id:016x}-{found.trace_flags:02x}"}
    if found.trace_state:
        headers["tracestate"] = found.trace_state.to_header()
    return headers


def begin(environ: dict, rule: str, start_ns: int | None = None) -> tracing.Served:
    """Open the server span of the prediction request ``environ`` describes, matched by the URL rule ``rule``
    (``/models/<name>/<ref>/predict``); :data:`registry.tracing.UNTRACED` when tracing is off."""
    if not tracing.enabled():
        return tracing.UNTRACED
    method = environ["REQUEST_METHOD"]
    route = _ROUTES.get(rule)
    if route is None:  # once per rule: a regular expression's substitution costs as much as the span
        route = _ROUTES[rule] = _PLACEHOLDER.sub(r"{\1}", rule)
    attributes = {"http.request.method": method, "http.route": route, "url.path": environ.get("PATH_INFO", ""),
                  "url.scheme": environ.get("wsgi.url_scheme", "http")}
    return tracing.serve(f"{method} {route}", carrier=environ, getter=ENVIRON, attributes=attributes,
                         start_ns=start_ns)
