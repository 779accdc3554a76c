"""Traces of the data plane (OpenTelemetry): off unless configured, and then sent from each worker by the SDK.

Off (the default) every span asked for is one shared no-op: a module global read and a ``nullcontext``
handed back. On, :func:`start` builds this process's ``TracerProvider`` (in each worker after the fork:
the batch processor's export thread belongs to the process that sends), which the SDK configures from
the standard variables: the sampler (``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``; parent-based
always on by default), the batch processor's pacing (``OTEL_BSP_*``), the OTLP/HTTP exporter's endpoint,
headers, timeout, compression and certificates (``OTEL_EXPORTER_OTLP_*``) and the resource
(``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``; the service is ``model-registry`` unless named).
A caller's trace context is read by the propagators ``OTEL_PROPAGATORS`` names (W3C trace context by default).

A request's server span is opened by its edge (:func:`serve`) and is the current span of the request's
thread while the data plane answers; the data plane's steps are its children (:func:`span`), and runs
after the answer (shadows) name it as their parent explicitly (:func:`capture`, :func:`record`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING

from opentelemetry import context, trace
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, Span, SpanContext, SpanKind, StatusCode

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import Getter
    from opentelemetry.sdk.trace import TracerProvider

SERVICE_NAME = "model-registry"
INSTRUMENTATION = "registry"
EXPORTERS = ("otlp", "console")  # OTEL_TRACES_EXPORTER's values this service can send to

_OFF = nullcontext(INVALID_SPAN)
_tracer: trace.Tracer | None = None  # None: tracing is off in this process
_provider: TracerProvider | None = None
_pid: int | None = None  # the process that started them
_extract = None  # the propagators' reading of a caller's trace context (imported when on: it reads OTEL_PROPAGATORS)


def start(exporters: tuple[str, ...]) -> None:
    """Send this process's spans to ``exporters`` (``otlp``: OTLP over HTTP; ``console``: standard output),
    each through its own batch processor; the SDK reads every other setting from the ``OTEL_*`` variables.
    Once per process: a second app of the process shares the first one's provider."""
    if _pid == os.getpid():
        return
    from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE_NAME_KEY
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME_KEY, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME_KEY: SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for name in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter_class(name)()))
    use(provider)


def use(provider: TracerProvider) -> None:
    """Trace this process through ``provider`` (:func:`start` builds one from the settings)."""
    global _tracer, _provider, _pid, _extract
    from opentelemetry import propagate

    _extract = propagate.extract
    _provider, _tracer, _pid = provider, provider.get_tracer(INSTRUMENTATION), os.getpid()


def prepare(exporters: tuple[str, ...]) -> None:
    """Import the SDK and the exporters' modules now, starting nothing: in gunicorn's master, before the fork,
    so that every worker shares them and none pays the imports at its start."""
    from opentelemetry import propagate  # noqa: F401
    from opentelemetry.sdk.trace import TracerProvider  # noqa: F401
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: F401

    for name in exporters:
        exporter_class(name)


def exporter_class(name: str) -> type:
    """The SDK's exporter ``name`` (one of :data:`EXPORTERS`) names."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter


def stop(timeout_seconds: float = 5.0) -> None:
    """Send what is waiting (within ``timeout_seconds``) and stop this process's tracing."""
    global _tracer, _provider, _pid
    provider, _provider, _tracer, _pid = _provider, None, None, None
    if provider is not None:
        provider.force_flush(int(timeout_seconds * 1000))
        provider.shutdown()


def flush(timeout_seconds: float = 30.0) -> bool:
    """Send every span ended so far; whether that was done within ``timeout_seconds`` (true when off)."""
    provider = _provider
    return True if provider is None else provider.force_flush(int(timeout_seconds * 1000))


def enabled() -> bool:
    """Whether this process sends spans."""
    return _tracer is not None


class Served:
    """A request's server span, current in the request's thread until :meth:`finish`."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span, token: object = None):
        self.span, self.token = span, token

    def finish(self, status: int | None) -> None:
        """End the span with the HTTP ``status`` answered (a 5xx marks it an error); no longer current."""
        if self.token is None:
            return
        context.detach(self.token)
        self.token = None
        if status is not None and self.span.is_recording():
            self.span.set_attribute("http.response.status_code", status)
            if status >= 500:
                self.span.set_status(StatusCode.ERROR)
        self.span.end()


UNTRACED = Served(INVALID_SPAN)


def serve(name: str, *, carrier: object, getter: Getter, attributes: Mapping[str, object],
          start_ns: int | None = None) -> Served:
    """Open the server span of a request, current in this thread until it is finished: a child of the caller's
    span when ``carrier`` holds a valid ``traceparent`` (read with ``getter`` by the propagators
    ``OTEL_PROPAGATORS`` names; anything else starts a trace of its own); :data:`UNTRACED` when tracing is off."""
    tracer = _tracer
    if tracer is None:
        return UNTRACED
    parent = _extract(carrier, getter=getter)
    opened = tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes, start_time=start_ns)
    return Served(opened, context.attach(trace.set_span_in_context(opened, parent)))


def span(name: str) -> nullcontext | _Child:
    """A child of the current span for the block (``parse``, ``resolve``, ``predict``…), ended when it ends and
    marked an error by an exception that leaves it; the shared no-op when tracing is off or nothing is traced."""
    tracer = _tracer
    if tracer is None:
        return _OFF
    if not trace.get_current_span().is_recording():
        return _OFF
    return _Child(tracer.start_span(name))


def current() -> Span:
    """The span current in this thread: the request's server span while the data plane answers it (the
    no-op span when tracing is off or nothing is traced)."""
    return INVALID_SPAN if _tracer is None else trace.get_current_span()


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), None when tracing is off or the thread traces nothing."""
    return id_of(capture())


def capture() -> SpanContext | None:
    """The current span's context, for work done later in another thread (:func:`record`); None when off."""
    if _tracer is None:
        return None
    found = trace.get_current_span().get_span_context()
    return found if found.is_valid else None


def id_of(parent: SpanContext | None) -> str | None:
    """The trace id (32 hex digits) of a captured context."""
    return None if parent is None else trace.format_trace_id(parent.trace_id)


def record(name: str, *, parent: SpanContext | None, start_ns: int, end_ns: int,
           attributes: Mapping[str, object], failed: bool = False) -> None:
    """A finished span of work done after its request (a shadow run), the child of the ``parent`` captured then."""
    tracer = _tracer
    if tracer is None or parent is None or not parent.trace_flags.sampled:
        return
    found = tracer.start_span(name, context=trace.set_span_in_context(NonRecordingSpan(parent)),
                              attributes=attributes, start_time=start_ns)
    if failed:
        found.set_status(StatusCode.ERROR)
    found.end(end_time=end_ns)


class _Child:
    """A child span for a ``with`` block: not made current (the steps of a request have no children)."""

    __slots__ = ("span",)

    def __init__(self, child: Span):
        self.span = child

    def __enter__(self) -> Span:
        return self.span

    def __exit__(self, kind, error, _traceback) -> None:
        if error is not None:
            self.span.set_status(StatusCode.ERROR, kind.__name__)  # never its message: it may quote the inputs
        self.span.end()
