"""A large predict body's rows read by compiled code (registry/serving/json_rows.py, native/json_rows.c): exactly
the numbers orjson and NumPy make of the same text, the rest of the body as orjson reads it, every other body
left to the general parser, and the GIL let go while the rows are read."""
import json
import math
import struct
import threading
import time

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.content import parse_body, parse_predict_body
from registry.serving import json_rows
from registry.serving.json_rows import NumberRows

MAX_ROWS = 10_000


def expected(data: bytes) -> np.ndarray:
    """What the general path makes of a body's instances: orjson's values, then float64."""
    return np.array(orjson.loads(data)["instances"], dtype=np.float64)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (so -0.0 is not 0.0), and of one shape."""
    return a.shape == b.shape and a.dtype == b.dtype and bytes(a.data) == bytes(np.ascontiguousarray(b).data)


def test_a_body_of_rows_is_read_into_the_matrix_and_the_rest_is_the_body_without_them():
    data = b'{"return_proba": true, "instances": [[1, 2.5, -0, -0.0], [1e-300, 0.1, 3E+5, 12345678901234567890]],' \
           b' "explain": {"top": 2}}'
    rest, rows = json_rows.split(data, MAX_ROWS)
    assert orjson.loads(rest) == {"return_proba": True, "instances": None, "explain": {"top": 2}}
    assert same(rows.matrix, expected(data)) and rows.matrix.flags.c_contiguous
    assert rows.text == b'[[1, 2.5, -0, -0.0], [1e-300, 0.1, 3E+5, 12345678901234567890]]'
    assert rows.lists() == orjson.loads(data)["instances"]
    assert math.copysign(1, rows.matrix[0, 2]) == 1 and math.copysign(1, rows.matrix[0, 3]) == -1  # as orjson


@pytest.mark.parametrize("text", [
    " \t\r\n{ \"instances\" :\n[ [ 1 , 2 ] ,[3,4] ] } \n",
    '{"instances": [[0.30000000000000004, 5e-324]]}'.replace("5e-324", "2.2250738585072014e-308"),  # smallest normal
    '{"instances": [[1.7976931348623157e308, -1.7976931348623157e308]]}',
    '{"instances": [[9007199254740993, 0.1e1, 1E-2, 123456789012345678901234567890]]}',
    '{"other": "a \\" quote, a [bracket] and {braces}", "instances": [[1]], "x": [{"a": [1, "]"]}]}',
])
def test_numbers_and_spacing_read_as_orjson_and_numpy_read_them(text):
    rest, rows = json_rows.split(text.encode(), MAX_ROWS)
    assert same(rows.matrix, expected(text.encode()))
    assert orjson.loads(rest) == {**orjson.loads(text), "instances": None}


@pytest.mark.parametrize("text", [
    "[[1, 2]]",  # not an object
    '{"inputs": [[1, 2]]}',  # no instances
    '{"instances": [[1]], "instances": [[2]]}',  # twice: orjson keeps the last
    '{"instances": [[1]], "instan\\u0063es": [[2]]}',  # an escaped name could be it
    '{"instances": {"a": 1}}',
    '{"instances": []}', '{"instances": [[]]}', '{"instances": [[1], [1, 2]]}', '{"instances": [1, 2]}',
    '{"instances": [{"x0": 1}]}', '{"instances": [[1, "2"]]}', '{"instances": [[1, true]]}',
    '{"instances": [[1, null]]}', '{"instances": [[NaN]]}', '{"instances": [[Infinity]]}',
    '{"instances": [[-Infinity]]}', '{"instances": [[01]]}', '{"instances": [[1.]]}', '{"instances": [[.5]]}',
    '{"instances": [[+1]]}', '{"instances": [[1e]]}', '{"instances": [[-]]}', '{"instances": [[0x10]]}',
    '{"instances": [[1e400]]}', '{"instances": [[1e-400]]}', '{"instances": [[5e-324]]}',  # out of a double's
    '{"instances": [[1 2]]}', '{"instances": [[1],]}', '{"instances": [[1,]]}', '{"instances": [[1]]',
    '{"instances": [[1]]} x', '{"instances": [[1]]}}', '{"instances" [[1]]}', '{"instances": [[[1]]]}',
    '{"instances": [[1' + "1" * 70 + ']]}',  # more digits than a double holds
    '{}', '', '{"instances": [[1]], }',
])
def test_anything_else_is_left_to_the_general_parser(text):
    assert json_rows.split(text.encode(), MAX_ROWS) is None


def test_more_rows_than_a_batch_may_have_are_left_to_the_general_parser():
    data = orjson.dumps({"instances": [[1.0, 2.0]] * 3})
    assert json_rows.split(data, 2) is None
    assert json_rows.split(data, 3)[1].matrix.shape == (3, 2)


finite = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x == 0 or abs(x) >= 2.2250738585072014e-308)
cell = st.one_of(finite, st.integers(min_value=-2**63, max_value=2**64 - 1))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(cell, min_size=3, max_size=3), min_size=1, max_size=20), st.sampled_from(["", " ", "\n "]))
def test_any_rows_of_numbers_read_bit_for_bit_as_the_general_path(rows, space):
    data = json.dumps({"instances": rows}, separators=(f",{space}", f":{space}")).encode()
    rest, read = json_rows.split(data, MAX_ROWS)
    assert same(read.matrix, expected(data))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60).map(lambda tail: b'{"instances": [[1, ' + tail))
def test_whatever_it_takes_orjson_takes_too_and_reads_the_same(data):
    found = json_rows.split(data, MAX_ROWS)
    if found is not None:
        assert same(found[1].matrix, expected(data))


def test_a_predict_body_parses_to_the_general_parsers_body_with_its_rows_read():
    rows = np.round(np.random.default_rng(0).normal(size=(2000, 8)), 6).tolist()
    data = orjson.dumps({"instances": rows, "return_proba": True})
    assert len(data) >= json_rows.FROM_BYTES
    body = parse_predict_body(data, MAX_ROWS)
    assert isinstance(body["instances"], NumberRows) and body["return_proba"] is True
    assert same(body["instances"].matrix, expected(data))
    small = orjson.dumps({"instances": rows[:10]})
    assert len(small) < json_rows.FROM_BYTES and parse_predict_body(small, MAX_ROWS) == parse_body(small, MAX_ROWS)
    odd = orjson.dumps({"instances": [[*row[:7], "x"] for row in rows]})  # a category: parsed as before
    assert parse_predict_body(odd, MAX_ROWS) == parse_body(odd, MAX_ROWS)


def test_the_gil_is_let_go_while_the_rows_are_read(monkeypatch):
    data = orjson.dumps({"instances": np.random.default_rng(1).normal(size=(400_000, 8)).tolist()})
    read, window, stamps, done = json_rows._read, [], [], threading.Event()

    def timed(*args):
        window.append(time.monotonic())
        try:
            return read(*args)
        finally:
            window.append(time.monotonic())

    def other_thread():
        while not done.is_set():
            stamps.append(time.monotonic())

    monkeypatch.setattr(json_rows, "_read", timed)
    spinning = threading.Thread(target=other_thread)
    spinning.start()
    try:
        assert json_rows.split(data, 400_000) is not None
    finally:
        done.set()
        spinning.join()
    start, end = window
    middle = (start + 0.3 * (end - start), end - 0.3 * (end - start))
    # Holding the GIL, the read would leave the other thread no moment inside its call at all.
    assert any(middle[0] < stamp < middle[1] for stamp in stamps)


def test_a_double_reads_as_its_shortest_text_does():
    for bits in np.random.default_rng(2).integers(0, 2**63, size=2000, dtype=np.uint64):
        value = struct.unpack("<d", struct.pack("<Q", int(bits)))[0]
        if not math.isfinite(value) or (value != 0 and abs(value) < 2.2250738585072014e-308):
            continue
        data = b'{"instances": [[' + repr(value).encode() + b"]]}"
        assert json_rows.split(data, 1)[1].matrix[0, 0] == value
