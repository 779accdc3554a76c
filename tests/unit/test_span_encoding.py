"""The compiled span encoder (``registry/native/span_encoding.c``): every span it writes reads back field for
field through opentelemetry-proto's generated messages, whatever the ids, times, names, states and errors; a
malformed span is refused with an exception, never written or crashed on; and it holds no reference it took."""
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from registry.span_encoding import encode_request
from registry.span_export import FIELDS, OtlpEncoder

texts = st.text(max_size=300)  # longer than 127 bytes in UTF-8 often: two-byte lengths
values = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False), texts)
spans = st.builds(
    lambda name, trace_id, span_id, parent_id, remote, kind, state, start, end, attributes, error: (
        name, trace_id, span_id, parent_id, remote, kind, state, start, end, tuple(attributes),
        tuple(attributes.values()), error),
    texts, st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.integers(0, 2**64 - 1), st.booleans(),
    st.integers(0, 5), texts, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
    st.dictionaries(st.text(min_size=1, max_size=40), values, max_size=6), st.none() | texts)


def read_back(body: bytes):
    (resource_spans,) = ExportTraceServiceRequest.FromString(body).resource_spans
    (scope_spans,) = resource_spans.scope_spans
    return scope_spans.spans


def plain(pairs) -> dict:
    return {pair.key: getattr(pair.value, pair.value.WhichOneof("value")) for pair in pairs}


@settings(max_examples=300, deadline=None)
@given(st.lists(spans, max_size=20))
def test_every_span_reads_back_field_for_field(batch):
    decoded = read_back(OtlpEncoder({"service.name": "scoring"}, "registry").encode(batch))

    assert len(decoded) == len(batch)
    for span, found in zip(batch, decoded):
        given_ = dict(zip(FIELDS, span))
        assert found.trace_id == given_["trace_id"].to_bytes(16, "big")
        assert found.span_id == given_["span_id"].to_bytes(8, "big")
        assert found.parent_span_id == (given_["parent_id"].to_bytes(8, "big") if given_["parent_id"] else b"")
        assert (found.name, found.kind, found.trace_state) == (given_["name"], given_["kind"], given_["state"])
        assert (found.start_time_unix_nano, found.end_time_unix_nano) == (given_["start"], given_["end"])
        assert found.flags == (0x300 if given_["remote"] else 0x100)
        assert plain(found.attributes) == dict(zip(given_["names"], given_["values"]))
        if given_["error"] is None:
            assert (found.status.code, found.status.message) == (0, "")
        else:
            assert (found.status.code, found.status.message) == (2, given_["error"])


def encode_spans(spans, blocks, make_block):
    return encode_request(b"", b"", spans, blocks, make_block)


def test_an_empty_batch_is_no_spans():
    assert read_back(OtlpEncoder({}, "registry").encode([])) == []


GOOD = ("parse", 5, 6, 7, False, 1, "", 10, 20, ("rows",), (1,), None)


@pytest.mark.parametrize("field, value, error", [
    ("trace_id", -1, OverflowError),
    ("trace_id", 2**128, OverflowError),
    ("trace_id", "5", TypeError),
    ("span_id", 2**64, OverflowError),
    ("parent_id", -1, OverflowError),
    ("start", 1.5, TypeError),
    ("end", None, TypeError),
    ("name", b"parse", AttributeError),  # the name is the block's, made by the encoder's Python
    ("state", None, TypeError),
    ("error", 3, TypeError),
    ("values", [1], TypeError),
    ("name", "\ud800", UnicodeEncodeError),  # a lone surrogate has no UTF-8
])
def test_a_malformed_span_is_refused_with_an_exception(field, value, error):
    span = tuple(value if name == field else GOOD[index] for index, name in enumerate(FIELDS))

    with pytest.raises(error):
        OtlpEncoder({}, "registry").encode([GOOD, span])


@pytest.mark.parametrize("span", [GOOD[:-1], (*GOOD, None), ["parse", *GOOD[1:]], "parse"])
def test_a_span_of_another_shape_is_refused(span):
    with pytest.raises(TypeError, match="tuple of 12 fields"):
        encode_spans([GOOD, span], {}, lambda key, kinds: (kinds, b""))


@pytest.mark.parametrize("answer", [None, b"x", ((), "x"), ((),)])
def test_a_block_maker_that_answers_something_else_is_refused(answer):
    with pytest.raises(TypeError, match="make_block"):
        encode_spans([GOOD], {}, lambda key, kinds: answer)


def test_a_block_maker_that_empties_the_batch_leaves_the_spans_read_so_far():
    batch = [("parse", 5, 6, 7, False, 1, "state-" + "x" * 40, 10, 20, (), (), "Error-" + "y" * 40), GOOD]

    def make(key, kinds):
        batch.clear()  # drops the list's references to the spans, the one being read included
        return kinds, b""

    spans = read_back(encode_request(b"", b"", batch, {}, make))

    assert [(span.trace_state, span.status.message) for span in spans] == [("state-" + "x" * 40, "Error-" + "y" * 40)]


def test_a_failing_block_maker_fails_the_batch():
    def fail(key, kinds):
        raise RuntimeError("no block")

    with pytest.raises(RuntimeError, match="no block"):
        encode_spans([GOOD], {}, fail)


def test_encoding_holds_no_reference_it_took():
    encoder = OtlpEncoder({}, "registry")
    name, value = "predict-" + "x" * 8, 10**30  # values of their own, counted alone
    batch = [(name, 2**127 + 1, 6, 7, True, 1, "k=v", 10, 20, ("big", "rows"), (value, 1), "Failed")] * 50
    encoder.encode(batch)  # the block is made and kept on the first
    before = sys.getrefcount(name), sys.getrefcount(value), sys.getrefcount(batch[0])

    for _ in range(200):
        encoder.encode(batch)
    with pytest.raises(OverflowError):
        encoder.encode([*batch, ("x", -1, *batch[0][2:])])

    assert (sys.getrefcount(name), sys.getrefcount(value), sys.getrefcount(batch[0])) == before


def test_a_block_kept_for_other_types_is_made_again_and_both_read_back():
    made = []

    def make(key, kinds):
        made.append(kinds)
        return kinds, b""

    blocks = {}
    encode_spans([("a", 1, 2, 0, False, 1, "", 0, 0, ("x",), (1,), None)], blocks, make)
    blocks[("a", 1, False, ("x",), (1,))] = ((int,), b"")
    encode_spans([("a", 1, 2, 0, False, 1, "", 0, 0, ("x",), (True,), None)], blocks, make)

    assert made == [(int,), (bool,)]
