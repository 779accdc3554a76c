"""The recorder's parts: the OTLP protobuf it writes (read back by opentelemetry-proto's generated messages),
its bounded queue, its sender against a real OTLP/HTTP receiver, and the strict reading of ``traceparent``."""
import gc
import json
import threading
from types import SimpleNamespace

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.harness.otlp_receiver import OtlpReceiver
from registry import tracing
from registry.otlp_http import Sender, endpoint
from registry.span_export import FIELDS, OtlpEncoder, Recorder
from tests.helpers import wait_for

TRACE, PARENT = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7


def finished(name="parse", *, span_id=7, parent_id=PARENT, kind=1, remote=False, attributes=None, error=None,
             state=""):
    """A finished span as the recorder queues it."""
    attributes = {} if attributes is None else attributes
    fields = dict(name=name, trace_id=TRACE, span_id=span_id, parent_id=parent_id, remote=remote, kind=kind,
                  state=state, start=1_700_000_000_000_000_001, end=1_700_000_000_000_900_000,
                  names=tuple(attributes), values=tuple(attributes.values()), error=error)
    return tuple(fields[field] for field in FIELDS)


def decoded(body: bytes):
    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    (scope_spans,) = resource_spans.scope_spans
    return resource_spans.resource, scope_spans


def plain(pairs) -> dict:
    return {pair.key: getattr(pair.value, pair.value.WhichOneof("value")) for pair in pairs}


def test_the_encoded_request_reads_back_field_for_field():
    encoder = OtlpEncoder({"service.name": "scoring", "telemetry.sdk.language": "python"}, "registry")
    server = finished("POST /models/{name}/{ref}/predict", span_id=2**64 - 1, kind=2, remote=True, state="vendor=x",
                      attributes={"http.response.status_code": 503, "model.name": "m", "ratio": 0.25, "flag": True,
                                  "offset": -3, "huge": 2**70}, error="")
    child = finished(span_id=9, parent_id=2**64 - 1, attributes={"prediction.rows": 1}, error="InvalidInput")

    resource, scope_spans = decoded(encoder.encode([server, child]))

    assert plain(resource.attributes) == {"service.name": "scoring", "telemetry.sdk.language": "python"}
    assert scope_spans.scope.name == "registry"
    first, second = scope_spans.spans
    assert (first.trace_id, first.span_id, first.parent_span_id) == (
        TRACE.to_bytes(16, "big"), (2**64 - 1).to_bytes(8, "big"), PARENT.to_bytes(8, "big"))
    assert (first.name, first.kind, first.trace_state, first.flags) == (server[0], 2, "vendor=x", 0x300)
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (1_700_000_000_000_000_001,
                                                                      1_700_000_000_000_900_000)
    assert plain(first.attributes) == {"http.response.status_code": 503, "model.name": "m", "ratio": 0.25,
                                       "flag": True, "offset": -3, "huge": str(2**70)}
    assert (first.status.code, first.status.message) == (2, "")
    assert (second.parent_span_id, second.kind, second.flags, second.trace_state) == ((2**64 - 1).to_bytes(8, "big"),
                                                                                      1, 0x100, "")
    assert (second.status.code, second.status.message, plain(second.attributes)) == (2, "InvalidInput",
                                                                                     {"prediction.rows": 1})


def test_a_kept_encoding_is_not_reused_for_an_equal_value_of_another_type():
    encoder = OtlpEncoder({}, "registry")
    spans = [finished(attributes={"x": 1}), finished(attributes={"x": True}), finished(attributes={"x": 1.0}),
             finished(attributes={"x": 1})]

    _, scope_spans = decoded(encoder.encode(spans))

    assert [span.attributes[0].value.WhichOneof("value") for span in scope_spans.spans] == [
        "int_value", "bool_value", "double_value", "int_value"]


def test_a_full_queue_drops_and_counts_and_a_flush_sends_the_rest():
    sent, gate = [], threading.Event()

    def sink(batch):
        gate.wait(10)  # the first send holds the thread while the queue fills
        sent.extend(batch)

    recorder = Recorder([sink], queue_size=3, delay_ms=60_000, batch_size=2)
    try:
        for number in range(2):
            recorder.add(number)  # the second fills a batch: the thread takes both and waits in the sink
        wait_for(lambda: not recorder._queue, "the first batch taken")
        for number in range(2, 7):
            recorder.add(number)
        assert recorder.dropped == 2
        gate.set()
        assert recorder.flush(10)
        assert sent == [0, 1, 2, 3, 4]
    finally:
        gate.set()
        recorder.stop(10)


def test_a_full_batch_is_sent_alone_and_its_latecomers_wait_for_the_next_send():
    batches, gate = [], threading.Event()

    def sink(batch):
        gate.wait(10)  # the first send holds the thread while the next batch and one more span are queued
        batches.append(list(batch))

    recorder = Recorder([sink], queue_size=100, delay_ms=60_000, batch_size=3)
    try:
        for number in range(3):
            recorder.add(number)
        wait_for(lambda: not recorder._queue, "the first batch taken")
        for number in range(3, 7):
            recorder.add(number)  # the sixth fills a batch; the seventh comes late for it
        gate.set()
        wait_for(lambda: len(batches) >= 2, "the second batch sent")
        assert batches == [[0, 1, 2], [3, 4, 5]] and list(recorder._queue) == [6]  # one request, not two
        assert recorder.flush(10)
        assert batches[2:] == [[6]]
    finally:
        gate.set()
        recorder.stop(10)


def test_stop_sends_what_is_queued_and_closes_the_sinks():
    sent, closed = [], []
    recorder = Recorder([sent.extend], queue_size=100, delay_ms=60_000, batch_size=50,
                        closers=[lambda: closed.append(1)])
    for number in range(7):
        recorder.add(number)

    recorder.stop(10)

    assert sent == list(range(7)) and closed == [1]


@pytest.mark.parametrize("compression", ["none", "gzip"])  # the receiver reads these two
def test_the_sender_posts_to_a_real_receiver_compressed_as_asked(compression):
    encoder = OtlpEncoder({"service.name": "scoring"}, "registry")
    with OtlpReceiver() as receiver:
        sender = Sender({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint + "/",
                         "OTEL_EXPORTER_OTLP_COMPRESSION": compression})
        try:
            sender.send(encoder.encode([finished("resolve")]))
            sender.send(encoder.encode([finished("predict")]))  # on the kept connection
        finally:
            sender.stop()
        assert [(span.name, span.resource) for span in receiver.spans()] == [
            ("resolve", {"service.name": "scoring"}), ("predict", {"service.name": "scoring"})]


def test_a_refused_send_says_what_the_collector_answered_without_retrying():
    with OtlpReceiver() as receiver:
        sender = Sender({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint + "/elsewhere"})
        with pytest.raises(OSError, match="404"):
            sender.send(OtlpEncoder({}, "registry").encode([finished()]))
        sender.stop()


@pytest.mark.parametrize("environ, url", [
    ({}, "http://localhost:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, "http://collector:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/x"}, "https://b/x"),
])
def test_the_endpoint_is_read_as_the_sdk_reads_it(environ, url):
    assert endpoint(environ) == url


def test_headers_and_timeout_are_read_signal_first():
    sender = Sender({"OTEL_EXPORTER_OTLP_HEADERS": "api-key=general",
                     "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key=traces,x=1",
                     "OTEL_EXPORTER_OTLP_TIMEOUT": "3", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})

    assert sender.headers == {"Content-Type": "application/x-protobuf", "User-Agent": "model-registry",
                              "api-key": "traces", "x": "1", "Content-Encoding": "gzip"}
    assert sender.timeout == 3.0


@pytest.mark.parametrize("environ, named", [
    ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER=jaeger_remote"),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG=1.5"),
    ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_PROPAGATORS": "tracecontext,b3"}, "b3 is not available here"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE=0"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "20"}, "must not exceed"),
    ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION=zstd"),
    ({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "OTEL_EXPORTER_OTLP_TIMEOUT=soon"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "an http:// or https:// URL is needed"),
])
def test_a_setting_the_recorder_cannot_use_is_refused_naming_it(environ, named):
    assert named in tracing.unsupported(environ, ("otlp",))


def test_the_standard_settings_are_accepted():
    assert tracing.unsupported({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1",
                                "OTEL_PROPAGATORS": "tracecontext,baggage", "OTEL_BSP_SCHEDULE_DELAY": "100",
                                "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}, ("otlp",)) is None


@pytest.mark.parametrize("sampler, arg, low_bits, sampled", [
    ("traceidratio", "0.5", 2**63 - 1, True),
    ("traceidratio", "0.5", 2**63, False),
    ("traceidratio", "0", 0, False),
    ("always_on", "", 2**64 - 1, True),
    ("always_off", "", 0, False),
])
def test_a_root_trace_is_sampled_by_its_ids_low_bits_as_the_sdk_samples_it(sampler, arg, low_bits, sampled):
    _, bound = tracing._sampler({"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": arg})

    assert (low_bits < bound) is sampled


VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("header", [
    VALID.upper(),  # hex digits are lower case
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the forbidden version
    VALID + "-extra",  # version 00 has exactly four fields
    VALID[:-1],  # a field too short
    "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",  # a field too long
    "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
    "00-４bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # a non-ASCII digit
    VALID + "\n",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-" + "x" * 500,  # longer than 512
    "", "-", "\x00" * 55, "00-" * 40,
])
def test_a_malformed_traceparent_is_not_read(header):
    assert tracing.parse_traceparent([header]) is None


def test_a_valid_traceparent_is_read_and_a_later_version_may_carry_more_fields():
    assert tracing.parse_traceparent([" " + VALID + "\t"]) == (TRACE, PARENT, 1)
    assert tracing.parse_traceparent(["cc" + VALID[2:] + "-what-comes-later"]) == (TRACE, PARENT, 1)
    assert tracing.parse_traceparent(None) is None and tracing.parse_traceparent([]) is None



def test_on_with_the_console_a_request_writes_its_spans_as_json_lines(capsys):
    from api.traces import ENVIRON

    tracing.start(("console",), environ={})
    try:
        served = tracing.serve("POST /x", carrier={"HTTP_TRACEPARENT": VALID}, getter=ENVIRON,
                               attributes={"url.path": "/x"})
        with tracing.span("parse") as step:
            step.set_attribute("prediction.rows", 2)
        with pytest.raises(KeyError), tracing.span("predict"):
            raise KeyError("the inputs, which are never written")
        captured = tracing.capture()
        served.finish(200)
        tracing.record("shadow", parent=captured, start_ns=1, end_ns=2, attributes={"model.route": "shadow"})
        assert tracing.flush(10)
    finally:
        tracing.stop()

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {line["name"]: line for line in lines}
    assert sorted(by_name) == ["POST /x", "parse", "predict", "shadow"]
    server = by_name["POST /x"]
    assert (server["trace_id"], server["parent_id"]) == (f"{TRACE:032x}", f"{PARENT:016x}")
    assert server["attributes"] == {"url.path": "/x", "http.response.status_code": 200}
    assert {line["parent_id"] for name, line in by_name.items() if name != "POST /x"} == {server["span_id"]}
    assert by_name["parse"]["attributes"] == {"prediction.rows": 2}
    assert (by_name["predict"]["status"], by_name["predict"]["error"]) == ("ERROR", "KeyError")
    assert (by_name["shadow"]["start_time_unix_nano"], by_name["shadow"]["end_time_unix_nano"]) == (1, 2)
    assert not tracing.enabled() and tracing.trace_id() is None


def test_a_stop_whose_send_outlasts_its_timeout_closes_the_sinks_which_cuts_the_send_short():
    released, taken = threading.Event(), threading.Event()

    def stuck(batch):  # a collector's retries, until the sender is stopped
        taken.set()
        released.wait(30)

    recorder = Recorder([stuck], queue_size=10, delay_ms=60_000, batch_size=1, closers=[released.set])
    recorder.add("a span")
    assert taken.wait(10)

    recorder.stop(0.2)
    recorder._thread.join(10)  # well before the 30 s the send would take without the closer

    assert released.is_set() and not recorder._thread.is_alive()


def test_a_requests_steps_are_queued_with_it_in_order_and_a_step_ending_after_it_goes_alone(monkeypatch):
    queued = []
    recorder = SimpleNamespace(add=lambda span, children=(): queued.append([span, *children]))
    monkeypatch.setattr(tracing, "_recorder", recorder)
    served = tracing.serve("POST /x", carrier={}, getter=SimpleNamespace(get=lambda carrier, key: None),
                           attributes={})
    late = tracing.span("log")
    with tracing.span("resolve"), tracing.span("parse"):
        assert queued == []  # nothing is queued before the request ends
    served.finish(200)
    with late:
        pass

    (request, parse_, resolve_), (alone,) = [[SimpleNamespace(**dict(zip(FIELDS, span))) for span in spans]
                                             for spans in queued]  # each step as it ended: the inner one first
    assert (request.name, parse_.name, resolve_.name, alone.name) == ("POST /x", "parse", "resolve", "log")
    steps = [parse_, resolve_, alone]
    assert {(step.trace_id, step.parent_id) for step in steps} == {(request.trace_id, request.span_id)}
    assert len({request.span_id, *(step.span_id for step in steps)}) == 4
    assert all(request.start <= step.start <= step.end for step in steps)
    assert parse_.end <= resolve_.end <= request.end <= alone.end


def test_a_traced_request_is_freed_by_reference_counts_and_queued_as_what_the_cycle_collector_lets_go(monkeypatch):
    queued = []
    monkeypatch.setattr(tracing, "_recorder", SimpleNamespace(add=lambda span, children=(): queued.extend([span,
                                                                                                          *children])))

    def spans_alive() -> int:
        return sum(type(found) is tracing._Span for found in gc.get_objects())  # no __class__ read

    gc.disable()  # what is left now is left for the cycle collector
    try:
        before = spans_alive()
        served = tracing.serve("POST /x", carrier={}, getter=SimpleNamespace(get=lambda carrier, key: None),
                               attributes={"http.route": "/x"})
        with tracing.span("resolve") as step:
            step.set_attributes({"model.name": "m", "model.version": 3, "model.route": ""})
        with tracing.span("predict") as step:
            step.set_attribute("prediction.rows", 1)
        served.finish(200)
        del served, step

        assert spans_alive() == before  # no cycle between a span and its steps
        gc.collect(0)
        gc.collect(1)  # the two younger generations' passes: none of the queued spans reaches the oldest
        assert len(queued) == 3 and not any(gc.is_tracked(span) for span in queued)
    finally:
        gc.enable()


def test_a_request_and_its_steps_are_dropped_together_when_the_queue_has_no_room_for_all():
    sent = []
    recorder = Recorder([sent.extend], queue_size=4, delay_ms=60_000, batch_size=4)
    try:
        recorder.add("first", ["a"])
        recorder.add("second", ["b", "c"])  # 2 + 3 > 4: none of the three
        recorder.add("third", ["d"])  # fills a batch: sent at once
        wait_for(lambda: len(sent) == 4, "the full batch sent")
        assert sent == ["first", "a", "third", "d"] and recorder.dropped == 3
    finally:
        recorder.stop(10)


def test_an_abandoned_request_span_is_no_longer_current_and_never_queued(monkeypatch):
    # The fast path opens a request's span before it reads the body, and hands a body it cannot read to Flask,
    # whose edge opens the request's span again: the first must leave no trace and no current span behind.
    queued = []
    monkeypatch.setattr(tracing, "_recorder", SimpleNamespace(add=lambda span, children=(): queued.append(span)))
    served = tracing.serve("POST /x", carrier={}, getter=SimpleNamespace(get=lambda carrier, key: None),
                           attributes={})
    assert tracing.trace_id() is not None

    served.abandon()
    served.abandon()  # twice is once
    served.finish(200)  # and an abandoned span is never ended

    assert tracing.trace_id() is None and queued == []
