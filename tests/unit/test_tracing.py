"""Tracing through the OpenTelemetry SDK: a request's server span and its steps (read back from the SDK's
in-memory exporter), the caller's sampling decision, the settings refused
at the start, and a forked worker's provider sending what it holds to a real OTLP/HTTP receiver when it stops."""
import os

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from api.traces import ENVIRON, answered_with, refusal
from bench.harness.otlp_receiver import OtlpReceiver
from config import load
from registry import tracing

TRACE, PARENT = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7
VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def exported():
    """Tracing on in this process, every span kept in memory as soon as it ends."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.use(provider)
    try:
        yield memory
    finally:
        tracing.stop()


def by_name(memory: InMemorySpanExporter) -> dict:
    return {span.name: span for span in memory.get_finished_spans()}


def test_a_requests_steps_are_children_of_its_server_span_under_the_callers(exported):
    served = tracing.serve("POST /x", carrier={"HTTP_TRACEPARENT": VALID, "HTTP_TRACESTATE": "vendor=opaque"},
                           getter=ENVIRON, attributes={"url.path": "/x"})
    with tracing.span("parse") as step:
        step.set_attribute("prediction.rows", 2)
    with pytest.raises(KeyError), tracing.span("predict"):
        raise KeyError("the inputs, which are never written")
    captured = tracing.capture()
    assert tracing.trace_id() == f"{TRACE:032x}" == tracing.id_of(captured)
    answered = answered_with(served)
    served.finish(200)
    tracing.record("shadow", parent=captured, start_ns=1, end_ns=2, attributes={"model.route": "shadow"})

    spans = by_name(exported)
    server = spans["POST /x"]
    assert (server.context.trace_id, server.parent.span_id, server.kind) == (TRACE, PARENT, SpanKind.SERVER)
    assert dict(server.attributes) == {"url.path": "/x", "http.response.status_code": 200}
    assert answered == {"traceparent": f"00-{TRACE:032x}-{server.context.span_id:016x}-01",
                        "tracestate": "vendor=opaque"}
    assert {spans[name].parent.span_id for name in ("parse", "predict", "shadow")} == {server.context.span_id}
    assert dict(spans["parse"].attributes) == {"prediction.rows": 2}
    assert (spans["predict"].status.status_code, spans["predict"].status.description) == (StatusCode.ERROR, "KeyError")
    assert (spans["shadow"].start_time, spans["shadow"].end_time) == (1, 2)
    assert tracing.trace_id() is None and tracing.capture() is None


def test_a_5xx_marks_the_server_span_an_error_without_a_message(exported):
    tracing.serve("POST /x", carrier={}, getter=ENVIRON, attributes={}).finish(503)

    (server,) = exported.get_finished_spans()
    assert (server.status.status_code, server.status.description) == (StatusCode.ERROR, None)
    assert server.parent is None


def test_a_caller_that_does_not_sample_gets_its_ids_answered_and_nothing_is_recorded(exported):
    served = tracing.serve("POST /x", carrier={"HTTP_TRACEPARENT": VALID[:-2] + "00"}, getter=ENVIRON, attributes={})
    assert tracing.span("parse") is tracing.span("predict")  # the shared no-op
    assert tracing.trace_id() == f"{TRACE:032x}"
    answered = answered_with(served)["traceparent"]
    assert answered.startswith(f"00-{TRACE:032x}-") and answered.endswith("-00")
    tracing.record("shadow", parent=tracing.capture(), start_ns=1, end_ns=2, attributes={})
    served.finish(200)

    assert exported.get_finished_spans() == ()


@pytest.mark.parametrize("hostile", [VALID.upper(), VALID + "-extra", "ff" + VALID[2:], VALID[:-1], "\x00" * 55,
                                     "01" + VALID[2:] + "-" + "x" * 520])
def test_a_malformed_traceparent_starts_a_trace_of_its_own(exported, hostile):
    tracing.serve("POST /x", carrier={"HTTP_TRACEPARENT": hostile}, getter=ENVIRON, attributes={}).finish(200)

    (server,) = exported.get_finished_spans()
    assert server.parent is None and server.context.trace_id != TRACE


def test_off_every_step_gets_the_one_shared_no_op_span_and_no_trace():
    assert not tracing.enabled()
    assert tracing.span("predict") is tracing.span("parse")
    with tracing.span("resolve") as span:
        assert not span.is_recording()
    assert tracing.trace_id() is None and tracing.capture() is None and tracing.flush()
    assert tracing.serve("POST /x", carrier={}, getter=ENVIRON, attributes={}) is tracing.UNTRACED
    assert answered_with(tracing.UNTRACED) == {}


@pytest.mark.parametrize("environ, named", [
    ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER=jaeger_remote"),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG=1.5"),
    ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_PROPAGATORS": "tracecontext,b3"}, "b3 is not available here"),
])
def test_a_setting_the_sdk_would_ignore_or_fail_on_is_refused_naming_it(environ, named):
    assert named in refusal(load({"OTEL_TRACES_EXPORTER": "otlp", **environ}).tracing)


def test_the_standard_settings_are_accepted():
    assert refusal(load({
        "OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1", "OTEL_PROPAGATORS": "tracecontext,baggage", "OTEL_BSP_SCHEDULE_DELAY": "100",
    }).tracing) is None
    assert refusal(load({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "traceidratio"}).tracing) is None  # ratio 1.0


@pytest.mark.parametrize("compression", ["none", "gzip"])  # the receiver reads these two
def test_a_forked_worker_sends_its_spans_to_a_real_receiver_when_it_stops(monkeypatch, compression):
    # A gunicorn worker: forked from a master that imported the SDK (tracing.prepare) and traces nothing, it starts
    # its own provider, and its graceful stop sends what its batch processor holds (nothing would be sent before:
    # the schedule is a minute).
    with OtlpReceiver() as receiver:
        for name, value in {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "scoring",
                            "OTEL_BSP_SCHEDULE_DELAY": "60000", "OTEL_EXPORTER_OTLP_COMPRESSION": compression}.items():
            monkeypatch.setenv(name, value)
        tracing.prepare(("otlp",))
        child = os.fork()
        if child == 0:  # pragma: no cover (the worker)
            code = 1
            try:
                tracing.start(("otlp",))
                tracing.serve("POST /x", carrier={"HTTP_TRACEPARENT": VALID}, getter=ENVIRON,
                              attributes={"url.path": "/x"}).finish(200)
                tracing.stop()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)

        assert os.waitstatus_to_exitcode(status) == 0 and not tracing.enabled()
        (span,) = receiver.spans()
        assert (span.name, span.trace_id, span.parent_span_id) == ("POST /x", f"{TRACE:032x}", f"{PARENT:016x}")
        assert span.resource["service.name"] == "scoring" and span.attributes["http.response.status_code"] == 200
