"""Traces of the data plane (OpenTelemetry's OTLP): off unless configured, and then sent from each worker.

Off (the default) every span asked for is one shared no-op: a module global read and a ``nullcontext``
handed back. On, :func:`start` builds this process's recorder (in each worker after the fork: its
export thread belongs to the process that sends, :mod:`registry.span_export`), which sends spans as
OTLP over HTTP (:mod:`registry.otlp_http`: the endpoint, headers, timeout, compression and certificates
of ``OTEL_EXPORTER_OTLP_*``); the resource is the SDK's reading of ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` (the service is ``model-registry`` unless named).

The spans themselves are this module's, not the SDK's: a span is a small compiled object
(:mod:`registry.span_recording`) with random ids, its times and a dict of attributes, queued as a plain tuple
when it ends (a request's steps with it; why a tuple: :data:`registry.span_export.FIELDS`); the SDK's cost more
CPU than the single-row prediction they describe
(locks, attribute checks, processor hooks, context objects, then its protobuf messages and its ``requests``
session; docs/operations.md, "Traces", has the figures).
What they do: W3C trace context in and out (``traceparent`` parsed as strictly as the SDK's propagator,
``tracestate`` kept by the API's parser), the standard samplers (``OTEL_TRACES_SAMPLER``: ``always_on``,
``always_off``, ``traceidratio`` and their ``parentbased_`` forms, ``parentbased_always_on`` by default;
``OTEL_TRACES_SAMPLER_ARG``), the batch processor's pacing (``OTEL_BSP_*``). What they do not: events,
links, baggage, other propagators or samplers (a start with one is refused by :func:`unsupported`).

A request's server span is opened by its edge (:func:`serve`) and is the current span of the request's
thread while the data plane answers; the data plane's steps are its children (:func:`span`), and runs
after the answer (shadows) name it as their parent explicitly (:func:`capture`, :func:`record`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextlib import nullcontext
from contextvars import ContextVar
from random import getrandbits
from time import time_ns
from typing import TYPE_CHECKING, NamedTuple

from opentelemetry.trace import INVALID_SPAN

try:
    from registry import span_recording
except ImportError as exc:  # a checkout whose compiled parts were not built
    raise ImportError(f"registry.span_recording is not built ({exc}): `pip install -e .` (or `make`) builds it "
                      "(it needs a C compiler, cc)") from exc

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import Getter

    from registry.span_export import Recorder

SERVICE_NAME = "model-registry"
INSTRUMENTATION = "registry"
EXPORTERS = ("otlp", "console")  # OTEL_TRACES_EXPORTER's values this service can send to
SAMPLERS = ("always_on", "always_off", "traceidratio")  # each also parentbased_
PROPAGATORS = ("tracecontext", "baggage", "none")  # OTEL_PROPAGATORS' values accepted (baggage is not read)
INTERNAL, SERVER = 1, 2  # OTLP's SpanKind

_OFF = nullcontext(INVALID_SPAN)
# The SDK propagator's pattern, matched whole (its ``$`` lets a value end in a line feed)
_TRACEPARENT = re.compile(r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)")
_TRACEPARENT_MAX = 512
_TRACESTATE_MAX = 512
_ID_BITS = 2**64 - 1
_FLAGS = tuple(f"{flags:02x}" for flags in range(256))  # a traceparent's flags, as answered

_recorder: Recorder | None = None  # None: tracing is off in this process
_pid: int | None = None  # the process that started it
_current: ContextVar[_Span | None] = ContextVar("registry.tracing.current", default=None)
_parent_based = True
_root_bound = 2**64  # a root (or non-parent-based) trace is sampled when its id's low 64 bits are below it

# Spans are compiled (registry/native/span_recording.c; their docstrings say what each part does): in Python a
# single-row prediction's four steps cost it more than any one of its own steps. span(name) opens a step of the
# current span (the shared no-op when off or untraced), whose `with` block ends it and leaves it to its span; a
# span's end_at queues it with its steps on this module's _recorder, read by the compiled code from these globals.
_Span = span_recording.Span
span = span_recording.child
span_recording.share(globals())


def start(exporters: tuple[str, ...], environ: Mapping[str, str] | None = None) -> None:
    """Send this process's spans to ``exporters`` (``otlp``: OTLP over HTTP; ``console``: standard output),
    paced and sampled as the ``OTEL_*`` variables of ``environ`` (the process's) say. Once per process:
    a second app of the process shares the first one's recorder."""
    global _recorder, _pid, _parent_based, _root_bound
    if _pid == os.getpid():
        return
    from registry import span_export

    environ = os.environ if environ is None else environ
    refused = unsupported(environ, exporters)
    if refused:
        raise ValueError(refused)
    _parent_based, _root_bound = _sampler(environ)
    sinks, closers = [], []
    for name in exporters:
        if name == "console":
            sinks.append(span_export.console_sink)
        else:
            send, close = span_export.otlp_sink(_resource(), INSTRUMENTATION, environ)
            sinks.append(send)
            closers.append(close)
    paced = span_export.pacing(environ)
    _recorder = span_export.Recorder(sinks, closers=closers, queue_size=paced["OTEL_BSP_MAX_QUEUE_SIZE"],
                                     delay_ms=paced["OTEL_BSP_SCHEDULE_DELAY"],
                                     batch_size=paced["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"])
    _pid = os.getpid()


def prepare(exporters: tuple[str, ...]) -> None:
    """Import the recorder's, the resource's and the sender's modules now, starting nothing: in gunicorn's
    master, before the fork, so that every worker shares them and none pays the imports at its start."""
    from opentelemetry.sdk.resources import Resource  # noqa: F401

    from registry import otlp_http, span_export  # noqa: F401


def unsupported(environ: Mapping[str, str], exporters: tuple[str, ...] = ()) -> str | None:
    """Why the sampler, the propagators, the pacing or (for ``otlp``) the collector's settings that ``environ``
    names cannot be used here; None when they can."""
    from registry.otlp_http import Sender
    from registry.span_export import pacing

    try:
        _sampler(environ)
        pacing(environ)
        if "otlp" in exporters:
            Sender(environ)
    except (ValueError, OSError) as exc:
        return str(exc)
    named = [part.strip().lower() for part in environ.get("OTEL_PROPAGATORS", "").split(",") if part.strip()]
    others = [name for name in named if name not in PROPAGATORS]
    if others:
        return (f"OTEL_PROPAGATORS={environ['OTEL_PROPAGATORS']}: {', '.join(others)} is not available here; "
                "traces propagate as W3C trace context (tracecontext)")
    return None


def stop(timeout_seconds: float = 5.0) -> None:
    """Send what is waiting (within ``timeout_seconds``) and stop this process's tracing."""
    global _recorder, _pid
    recorder, _recorder, _pid = _recorder, None, None
    if recorder is not None:
        recorder.stop(timeout_seconds)


def flush(timeout_seconds: float = 30.0) -> bool:
    """Send every span ended so far; whether that was done within ``timeout_seconds`` (true when off)."""
    recorder = _recorder
    return True if recorder is None else recorder.flush(timeout_seconds)


def dropped() -> int:
    """How many spans this process dropped because its queue was full (``OTEL_BSP_MAX_QUEUE_SIZE``)."""
    recorder = _recorder
    return 0 if recorder is None else recorder.dropped


def enabled() -> bool:
    """Whether this process sends spans."""
    return _recorder is not None


class Served:
    """A request's server span, current in the request's thread until :meth:`finish`."""

    __slots__ = ("span", "token")

    def __init__(self, span, token=None):
        self.span, self.token = span, token

    def finish(self, status: int | None) -> None:
        """End the span with the HTTP ``status`` answered (a 5xx marks it an error); no longer current."""
        if self.token is None:
            return
        _current.reset(self.token)
        self.token = None
        span = self.span
        if status is not None:
            span.attributes["http.response.status_code"] = status
            if status >= 500:
                span.error = ""
        span.end_at()

    def abandon(self) -> None:
        """No longer current, and never sent: the request went to another edge, which traces it itself."""
        if self.token is not None:
            _current.reset(self.token)
            self.token = None

    def headers(self) -> dict[str, str]:
        """The W3C ``traceparent`` (and ``tracestate``) of the span, to answer with; none when off."""
        span = self.span
        if span is INVALID_SPAN:
            return {}
        headers = {"traceparent": "-".join(("00", _hex(span.trace_id, 16), _hex(span.span_id, 8), _FLAGS[span.flags]))}
        if span.state:
            headers["tracestate"] = span.state
        return headers


UNTRACED = Served(INVALID_SPAN)


def serve(name: str, *, carrier: object, getter: Getter, attributes: Mapping[str, object],
          start_ns: int | None = None) -> Served:
    """Open the server span of a request, current in this thread until it is finished: a child of the caller's
    span when ``carrier`` holds a valid W3C ``traceparent`` (read with ``getter``; anything else starts a
    trace of its own); :data:`UNTRACED` when tracing is off."""
    if _recorder is None:
        return UNTRACED
    given = getter.get(carrier, "traceparent")
    caller = parse_traceparent(given) if given else None
    if caller is None:
        trace_id = getrandbits(128) or 1
        sampled = (trace_id & _ID_BITS) < _root_bound
        opened = _Span(name, trace_id, 0, sampled, SERVER, start_ns or time_ns(), dict(attributes), False,
                       int(sampled))
    else:
        trace_id, parent_id, flags = caller
        sampled = bool(flags & 1) if _parent_based else (trace_id & _ID_BITS) < _root_bound
        opened = _Span(name, trace_id, parent_id, sampled, SERVER, start_ns or time_ns(), dict(attributes), True,
                       (flags & ~1) | sampled, _tracestate(getter.get(carrier, "tracestate")))
    return Served(opened, _current.set(opened))


def parse_traceparent(values: list[str] | None) -> tuple[int, int, int] | None:
    """The trace id, span id and flags of a W3C ``traceparent`` header (the first of ``values``), parsed as the
    SDK's propagator parses it (a line feed aside); None for anything else (too long, malformed, all-zero
    ids, version ``ff``, version ``00`` with more fields)."""
    if not values or len(values[0]) > _TRACEPARENT_MAX:
        return None
    found = _TRACEPARENT.fullmatch(values[0])
    if found is None:
        return None
    version, trace_hex, span_hex, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(flags, 16)


def _tracestate(values: list[str] | None) -> str:
    """The caller's ``tracestate``, as the API's parser keeps it ("" when absent, too long or invalid)."""
    if not values or sum(map(len, values)) + len(values) - 1 > _TRACESTATE_MAX:
        return ""
    from opentelemetry.trace.span import TraceState

    return TraceState.from_header(values).to_header()


def current():
    """The span current in this thread: the request's server span while the data plane answers it (the
    no-op span when tracing is off or nothing is traced)."""
    found = _current.get()
    return INVALID_SPAN if found is None else found


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), None when tracing is off or the thread traces nothing."""
    found = _current.get()
    return None if found is None else _hex(found.trace_id, 16)


class Parent(NamedTuple):
    """A span captured for work done later in another thread: what its children need of it."""

    trace_id: int
    span_id: int
    sampled: bool


def capture() -> Parent | None:
    """The current span, for work done later in another thread (:func:`record`); None when off or untraced."""
    found = _current.get()
    return None if found is None else Parent(found.trace_id, found.span_id, found.sampled)


def id_of(parent: Parent | None) -> str | None:
    """The trace id (32 hex digits) of a captured span."""
    return None if parent is None else _hex(parent.trace_id, 16)


def record(name: str, *, parent: Parent | None, start_ns: int, end_ns: int,
           attributes: Mapping[str, object], failed: bool = False) -> None:
    """A finished span of work done after its request (a shadow run), the child of the ``parent`` captured then."""
    if _recorder is None or parent is None or not parent.sampled:
        return
    found = _Span(name, parent.trace_id, parent.span_id, True, INTERNAL, start_ns, dict(attributes))
    if failed:
        found.error = ""
    found.end_at(end_ns)


def _hex(number: int, size: int) -> str:
    """An id as W3C trace context writes it: ``size`` bytes in lower-case hex (four times cheaper than a format spec,
    and a request writes its trace id two or three times)."""
    return number.to_bytes(size, "big").hex()


def _sampler(environ: Mapping[str, str]) -> tuple[bool, int]:
    """Whether the sampler ``OTEL_TRACES_SAMPLER`` names follows a caller's decision, and the bound below which a
    trace id's low 64 bits are sampled otherwise (as the SDK's ``TraceIdRatioBased``); ValueError for a
    sampler or ratio not available here."""
    named = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    parent_based = named.startswith("parentbased_")
    root = named.removeprefix("parentbased_")
    if root not in SAMPLERS:
        raise ValueError(f"OTEL_TRACES_SAMPLER={named}: not available here; use {', '.join(SAMPLERS)} or their "
                         "parentbased_ forms")
    if root != "traceidratio":
        return parent_based, 2**64 if root == "always_on" else 0
    given = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        ratio = float(given) if given else 1.0
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG={given}: a ratio between 0 and 1 is needed")
    return parent_based, round(ratio * 2**64)


def _resource() -> dict[str, object]:
    """The resource's attributes, as the SDK reads them (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
    its own), with this service's name when none is given."""
    from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE_NAME_KEY
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME_KEY, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME_KEY: SERVICE_NAME}))
    return dict(resource.attributes)
