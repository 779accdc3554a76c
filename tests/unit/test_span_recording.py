"""The compiled spans (registry/native/span_recording.c), as registry.tracing records a request with them: what a step
keeps of its span, what an exception leaves on it, what is refused, and that nothing leaks or is shared by a fork."""
import gc
import os
import sys
from types import SimpleNamespace

import pytest

from registry import tracing
from registry.span_export import FIELDS

NO_HEADERS = SimpleNamespace(get=lambda carrier, key: None)


@pytest.fixture
def queued(monkeypatch):
    """What the recorder is handed, one list a call: a span, then its steps."""
    found = []
    monkeypatch.setattr(tracing, "_recorder", SimpleNamespace(add=lambda span, children=(): found.append([span,
                                                                                                       *children])))
    return found


def fields(span: tuple) -> SimpleNamespace:
    return SimpleNamespace(**dict(zip(FIELDS, span, strict=True)))


def test_a_step_is_the_child_of_the_current_span_with_its_own_id_times_and_attributes(queued):
    served = tracing.serve("POST /x", carrier={}, getter=NO_HEADERS, attributes={"http.route": "/x"})
    with tracing.span("resolve") as step:
        assert step.is_recording() and step.end == 0
        step.set_attributes({"model.name": "m", "model.version": 3})
        step.set_attribute("model.route", "")
        step.set_attribute("model.version", 4)  # set again: the last value is sent
    served.finish(200)

    (request, resolve), = [[fields(span) for span in spans] for spans in queued]
    assert (resolve.name, resolve.kind, resolve.remote, resolve.state, resolve.error) == ("resolve", 1, False, "", None)
    assert (resolve.trace_id, resolve.parent_id) == (request.trace_id, request.span_id)
    assert 0 < resolve.span_id < 2**64 and resolve.span_id != request.span_id
    assert request.start <= resolve.start <= resolve.end <= request.end
    assert dict(zip(resolve.names, resolve.values)) == {"model.name": "m", "model.version": 4, "model.route": ""}
    assert dict(zip(request.names, request.values)) == {"http.route": "/x", "http.response.status_code": 200}
    assert (request.kind, request.parent_id, request.error) == (tracing.SERVER, 0, None)


def test_an_exception_marks_its_step_by_class_name_only_and_goes_on(queued):
    served = tracing.serve("POST /x", carrier={}, getter=NO_HEADERS, attributes={})
    with pytest.raises(KeyError, match="a secret input"):
        with tracing.span("predict"):
            raise KeyError("a secret input")
    served.finish(200)

    request, predict = [fields(span) for span in queued[0]]
    assert predict.error == "KeyError" and request.error is None


def test_a_5xx_marks_the_request_span_an_error_without_a_message(queued):
    served = tracing.serve("POST /x", carrier={}, getter=NO_HEADERS, attributes={})
    served.finish(503)
    assert fields(queued[0][0]).error == ""


def test_nothing_is_made_or_queued_when_off_untraced_or_unsampled(monkeypatch, queued):
    assert tracing.span("parse") is tracing._OFF  # no current span in this thread
    unsampled = tracing.serve("POST /x", carrier={"traceparent": [f"00-{'1' * 32}-{'2' * 16}-00"]},
                              getter=SimpleNamespace(get=lambda carrier, key: carrier.get(key)), attributes={})
    assert not unsampled.span.sampled
    assert tracing.span("parse") is tracing._OFF
    unsampled.finish(200)
    assert queued == []
    monkeypatch.setattr(tracing, "_recorder", None)
    assert tracing.serve("POST /x", carrier={}, getter=NO_HEADERS, attributes={}) is tracing.UNTRACED
    assert tracing.span("parse") is tracing._OFF


def test_a_step_whose_block_is_left_twice_is_kept_once(queued):
    served = tracing.serve("POST /x", carrier={}, getter=NO_HEADERS, attributes={})
    step = tracing.span("parse")
    with step:
        pass
    step.__exit__(None, None, None)
    served.finish(200)
    assert [fields(span).name for span in queued[0]] == ["POST /x", "parse"]


def test_a_span_ended_at_a_given_time_keeps_it_and_a_step_cannot_be_ended_so(queued):
    served = tracing.serve("POST /x", carrier={}, getter=NO_HEADERS, attributes={}, start_ns=10)
    step = tracing.span("parse")
    with pytest.raises(TypeError, match="with block"):
        step.end_at(5)
    served.span.end_at(20)
    served.abandon()  # no longer current in this thread
    assert (fields(queued[0][0]).start, fields(queued[0][0]).end) == (10, 20)


@pytest.mark.parametrize("make, error", [
    (lambda: tracing._Span("x", 1, 0, True, 1, 0, {}, remote=True), "positional"),
    (lambda: tracing._Span("x", 1, 0, True, 1, 0, [("a", 1)]), "dict"),
    (lambda: tracing._Span("x", 1, 0, True, 1, 2**64, {}), "too large|int too big"),
    (lambda: tracing._Span("x", 1, 0, True, 1, 0, {}, False, 1, b"state"), "str"),
    (lambda: tracing._Span("x", 1, 0), "at least"),
])
def test_a_span_made_wrong_is_refused(make, error):
    with pytest.raises((TypeError, OverflowError), match=error):
        make()


def test_a_spans_fields_cannot_be_replaced_or_removed_and_its_error_is_none_or_a_string():
    span = tracing._Span("x", 1, 0, True, 1, 0, {})
    for name in ("name", "trace_id", "span_id", "attributes", "start", "end", "sampled"):
        with pytest.raises(AttributeError):
            setattr(span, name, 1)
    with pytest.raises(TypeError, match="None or a string"):
        span.error = 3
    with pytest.raises(TypeError, match="None or a string"):
        del span.error
    span.error = "ValueError"
    assert span.ended()[FIELDS.index("error")] == "ValueError"
    with pytest.raises(TypeError):
        span.set_attribute("only a key")
    with pytest.raises((TypeError, AttributeError)):
        span.set_attributes(["not", "a", "mapping"])


def test_recording_leaks_no_reference(queued):
    name, attributes = "POST /leak", {"http.route": "/leak"}
    gc.collect()  # earlier tests' garbage that still holds the interned "resolve" goes first, not during the count
    before = sys.getrefcount(name), sys.getrefcount("resolve"), sys.getrefcount(tracing._OFF)
    for _ in range(200):
        served = tracing.serve(name, carrier={}, getter=NO_HEADERS, attributes=attributes)
        with tracing.span("resolve") as step:
            step.set_attributes(attributes)
        with pytest.raises(ValueError):
            with tracing.span("resolve"):
                raise ValueError
        served.finish(200)
    tracing.span("resolve")  # the no-op, handed back
    del served, step
    queued.clear()
    gc.collect()
    after = sys.getrefcount(name), sys.getrefcount("resolve"), sys.getrefcount(tracing._OFF)
    # A leak keeps one reference an iteration (200 here); anything else of the process may only let go of some.
    assert all(count <= was for count, was in zip(after, before)), (after, before)


def test_a_forked_child_makes_other_span_ids_than_its_parent():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids, written back
        try:
            os.write(write, ",".join(str(tracing._Span("x", 1, 0, True, 1, 0, {}).span_id)
                                     for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    mine = {tracing._Span("x", 1, 0, True, 1, 0, {}).span_id for _ in range(8)}
    with os.fdopen(read) as answer:
        theirs = {int(found) for found in answer.read().split(",")}
    os.waitpid(pid, 0)
    assert len(theirs) == 8 and not mine & theirs
