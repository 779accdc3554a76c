"""A real OTLP/HTTP receiver on loopback: ``POST /v1/traces`` bodies decoded as ``ExportTraceServiceRequest``
(``opentelemetry-proto``), for the tests (which read the spans) and the benchmarks (which count and drop them)."""
import gzip
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PATH = "/v1/traces"
_ANSWER = ExportTraceServiceResponse().SerializeToString()


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived: ids in hex, its attributes as plain values, and its resource's."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict
    resource: dict
    status_code: int
    start_ns: int
    end_ns: int
    trace_state: str = ""


class OtlpReceiver:
    """Accepts OTLP/HTTP protobuf exports; keeps the spans (``keep=True``) or only counts them. It listens on
    loopback, or on ``host`` (``0.0.0.0``: where a container's network reaches this machine too)."""

    def __init__(self, keep: bool = True, host: str = "127.0.0.1"):
        self.keep = keep
        self.requests = 0
        self.span_count = 0
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoint(self) -> str:
        """The base URL to give as ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporter adds ``/v1/traces``)."""
        return self.endpoint_at("127.0.0.1")

    def endpoint_at(self, host: str) -> str:
        """That base URL with another name for this machine (``host.containers.internal`` in a container)."""
        return f"http://{host}:{self._server.server_address[1]}"

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far."""
        with self._lock:
            return list(self._spans)

    def wait_for(self, found, timeout: float = 30.0) -> list[ReceivedSpan]:
        """Poll until ``found(spans)`` is true of the spans received (returned then); AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if found(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"not received within {timeout} s; got {[(s.name, s.trace_id) for s in spans]}")
            time.sleep(0.05)

    def _take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        received = []
        if self.keep:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    received += [_span(span, resource) for span in scope_spans.spans]
            counted = len(received)
        else:  # decoded (protobuf's C parser) and counted: no Python object a span, as a collector on another
            # machine would cost the benchmarks' two cores nothing
            counted = sum(len(scope_spans.spans) for resource_spans in request.resource_spans
                          for scope_spans in resource_spans.scope_spans)
        with self._lock:
            self.requests += 1
            self.span_count += counted
            self._spans += received

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # kept alive, as a collector keeps them: every answer has a length
            disable_nagle_algorithm = True  # the answer's body, written after its headers, leaves at once

            def do_POST(self):  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != PATH or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_response(404 if self.path != PATH else 415)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver._take(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(_ANSWER)))
                self.end_headers()
                self.wfile.write(_ANSWER)

            def log_message(self, *args):
                pass

        return Handler


def _span(span, resource: dict) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(), kind=span.kind, attributes=_attributes(span.attributes),
        resource=resource, status_code=span.status.code, start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano, trace_state=span.trace_state,
    )


def _attributes(pairs) -> dict:
    """OTLP key-values as a dict of plain values."""
    found = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        found[pair.key] = getattr(pair.value, kind) if kind else None
    return found
