"""Bad V2 requests get a 4xx in the protocol's shape whose error says what to change; never a 5xx."""
import gzip
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.v2.tensors import DATATYPES
from tests.integration.v2_support import (  # noqa: F401 (fixtures)
    ROWS,
    assert_error,
    binary_body,
    by_feature,
    client,
    infer,
    limited,
    models,
    output,
    tensor,
)

# -- bad input: 4xx in the protocol's shape, never a 5xx ---------------------------------------


def _body(inputs, **extra):
    return {"inputs": inputs, **extra}


BAD_REQUESTS = {
    "shape-does-not-match-data": (_body([tensor("input-0", ROWS, shape=[2, 4])]), "its shape holds 8 values but its data has 12"),
    "wrong-width": (_body([tensor("input-0", [[1.0, 2.0, 3.0]])]), "send shape [N, 4] with the features x0, x1, x2, x3"),
    "unknown-datatype": (_body([tensor("input-0", ROWS, "FP128")]), "unknown datatype 'FP128'; use one of BOOL"),
    "datatype-not-a-string": (_body([tensor("input-0", ROWS, ["FP64"])]), "unknown datatype ['FP64']"),
    "named-after-no-feature": (_body(by_feature(ROWS)[:3] + [{**by_feature(ROWS)[3], "name": "colour"}]), "colour are named after no feature; the features are x0"),
    "several-unnamed": (_body([tensor("a", ROWS), tensor("b", ROWS)]), "inputs a, b are named after no feature"),
    "missing-feature": (_body(by_feature(ROWS)[:3]), "missing feature(s) x3"),
    "duplicated-feature": (_body(by_feature(ROWS) + by_feature(ROWS)[:1]), "x0 are sent more than once"),
    "uneven-features": (_body(by_feature(ROWS)[:3] + by_feature(ROWS[:2])[3:]), "different numbers of rows (2, 3)"),
    "feature-shape": (_body(by_feature(ROWS, column_shape=lambda n: [1, n])), "has shape [1, 3]; a feature tensor has shape [N] or [N, 1]"),
    "string-for-number": (_body([tensor("input-0", [["1.5", 2.0, 3.0, 4.0]], shape=[1, 4])]), "is FP64 but its data holds a string ('1.5'); send numbers"),
    "bytes-for-number": (_body([{"name": "input-0", "shape": [1, 4], "datatype": "BYTES", "data": ["1", "2", "3", "4"]}]), "row 0, feature x0: expected a number, got '1'"),
    "bool-for-number": (_body([{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [True, 1, 2, 3]}]), "holds a boolean"),
    "null": (_body([{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [None, 1, 2, 3]}]), "holds null"),
    "out-of-range": (_body([{"name": "input-0", "shape": [1, 4], "datatype": "UINT8", "data": [300, 1, 2, 3]}]), "out of the range of UINT8"),
    "fp16-overflow": (_body([{"name": "input-0", "shape": [1, 4], "datatype": "FP16", "data": [1e6, 1, 2, 3]}]), "row 0, feature x0: expected a finite number, got Infinity"),
    "ragged": (_body([{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": [[1, 2, 3, 4], 5, 6, 7, 8]}]), "mixes lists and values"),
    "unknown-output": (_body([tensor("input-0", ROWS)], outputs=[{"name": "predict_log_proba"}]), "unknown output(s) predict_log_proba; version 1 of 'reg' answers predict"),
    "proba-of-a-regressor": (_body([tensor("input-0", ROWS)], outputs=[{"name": "predict_proba"}]), "unknown output(s) predict_proba"),
    "no-inputs": ({"inputs": []}, "'inputs' must be a non-empty list"),
    "not-an-object": ([1, 2], "must be a JSON object"),
    "unknown-key": (_body([tensor("input-0", ROWS)], instances=[[1]]), "unexpected key(s) instances"),
    "id-not-a-string": (_body([tensor("input-0", ROWS)], id=7), "'id' must be a string"),
    "no-data": (_body([{"name": "input-0", "shape": [1, 4], "datatype": "FP64"}]), "send its 'data', or its binary_data_size"),
    "negative-shape": (_body([{"name": "input-0", "shape": [-1, 4], "datatype": "FP64", "data": []}]), "shape must be a list of non-negative integers"),
    "empty-batch": (_body([{"name": "input-0", "shape": [0, 4], "datatype": "FP64", "data": []}]), "the inputs hold no rows"),
    "shared-memory": (_body([{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "parameters": {"shared_memory_region": "r"}}]), "shared memory is not supported"),
    "classification-extension": (_body([tensor("input-0", ROWS)], outputs=[{"name": "predict", "parameters": {"classification": 2}}]), "classification extension is not supported"),
}


@pytest.mark.parametrize("body, fragment", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
def test_bad_requests_are_400_with_an_error_that_says_what_to_change(client, models, body, fragment):
    assert_error(client.post("/v2/models/reg/infer", json=body), 400, fragment)


@pytest.mark.parametrize("token, fragment", [("NaN", "got NaN"), ("Infinity", "got Infinity"), ("-Infinity", "got -Infinity"), ("1e999", "got Infinity")])
def test_nan_and_infinity_are_400_naming_the_row_and_feature(client, models, token, fragment):
    raw = '{"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4, 5, %s, 7, 8]}]}' % token
    assert_error(client.post("/v2/models/reg/infer", data=raw), 400, "row 1, feature x1: expected a finite number", fragment)


def test_a_text_value_for_a_number_in_a_mixed_model_is_400_naming_the_row_and_feature(client, models):
    inputs = [
        {"name": "size", "shape": [2], "datatype": "BYTES", "data": ["1.0", "big"]},
        {"name": "colour", "shape": [2], "datatype": "BYTES", "data": ["red", "blue"]},
    ]
    assert_error(infer(client, "mixed", inputs), 400, "row 0, feature size: expected a number, got '1.0'")


BAD_BINARY = {
    "header-longer-than-body": (lambda: binary_body(np.ones((1, 4)), header_delta=10_000), "Inference-Header-Content-Length is"),
    "header-not-a-number": (lambda: (b"{}", {"Inference-Header-Content-Length": "twelve"}), "must be a number of bytes"),
    "header-cuts-the-json": (lambda: binary_body(np.ones((1, 4)), header_delta=-5), "not valid"),
    "size-short-of-the-body": (lambda: binary_body(np.ones((1, 4)), size_delta=-8), "shape holds 4 FP64 values (32 bytes) but its binary_data_size is 24"),
    "size-past-the-body": (lambda: binary_body(np.ones((1, 4)), size_delta=8), "binary_data_size 40 runs past the 32 bytes"),
    "bytes-after-the-tensors": (lambda: (lambda b, h: (b + b"junk", h))(*binary_body(np.ones((1, 4)))), "36 bytes follow the JSON header"),
    "bool-not-0-or-1": (lambda: binary_body(np.full((1, 4), 7, dtype=np.uint8), datatype="BOOL"), "BOOL bytes must be 0 or 1"),
    "binary-nan": (lambda: binary_body(np.array([[1.0, np.nan, 2.0, 3.0]])), "row 0, feature x1: expected a finite number, got NaN"),
}


@pytest.mark.parametrize("make, fragment", list(BAD_BINARY.values()), ids=list(BAD_BINARY))
def test_bad_binary_bodies_are_400_with_an_error_that_says_what_to_change(client, models, make, fragment):
    body, headers = make()
    assert_error(client.post("/v2/models/reg/infer", data=body, headers=headers), 400, fragment)


def test_bytes_elements_that_run_past_their_tensor_are_400(client, models):
    chunk = (4).to_bytes(4, "little") + b"re"
    header = json.dumps({"inputs": [
        {"name": "size", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "colour", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": len(chunk)}},
    ]}).encode()
    response = client.post("/v2/models/mixed/infer", data=header + chunk, headers={"Inference-Header-Content-Length": str(len(header))})
    assert_error(response, 400, "a BYTES element of 4 bytes runs past binary_data_size")


def test_no_garbage_body_makes_a_5xx(client, models):
    bodies = [b"", b"null", b"[]", b"{}", b"\xff\xfe", b'"text"', b"12", b'{"inputs": [{}]}', b'{"inputs": [{"name": "x", "shape": "2"}]}',
              b'{"inputs": [{"name": "x0", "shape": [1], "datatype": "FP64", "data": [[]]}]}', b'{"inputs": null, "outputs": 3}']
    for body in bodies:
        response = client.post("/v2/models/reg/infer", data=body)
        assert response.status_code == 400, (body, response.get_data(as_text=True))
        assert response.get_json()["error"]


def test_a_batch_at_the_row_limit_is_answered_and_one_over_it_is_413(limited):
    assert output(infer(limited, "m/versions/1", [tensor("input-0", [ROWS[0]] * 5)]))["shape"] == [5]
    assert_error(infer(limited, "m/versions/1", [tensor("input-0", [ROWS[0]] * 6)]), 413, "batch has 6 rows; the limit is 5")
    assert_error(infer(limited, "m/versions/1", by_feature([ROWS[0]] * 6)), 413, "batch has 6 rows")


def test_a_body_over_the_size_limit_is_413_naming_the_limit(limited):
    body, headers = binary_body(np.ones((40_000, 4)))
    assert_error(limited.post("/v2/models/m/versions/1/infer", data=body, headers=headers), 413, "limit of 1 MB (MAX_PREDICT_MB)")


def test_an_unknown_encoding_is_415_and_a_corrupt_body_400(client, models):
    assert_error(client.post("/v2/models/reg/infer", data=b"abc", headers={"Content-Encoding": "br"}), 415, "'br' is not supported")
    assert_error(client.post("/v2/models/reg/infer", data=b"abc", headers={"Content-Encoding": "gzip"}), 400, "not valid gzip data")


def test_a_body_that_decompresses_past_the_limit_is_413(limited):
    bomb = gzip.compress(b" " * (2 * 1024 * 1024))
    assert len(bomb) < 1024 * 1024
    response = limited.post("/v2/models/m/versions/1/infer", data=bomb, headers={"Content-Encoding": "gzip"})
    assert_error(response, 413, "decompressed body is over the limit of 1 MB")


# -- whatever the tensors hold, the answer is never a 5xx ---------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4),
    max_leaves=12,
)
_TENSORS = st.fixed_dictionaries(
    {"name": st.sampled_from(["input-0", "x0", "x1", "x2", "x3", "colour", ""]),
     "datatype": st.sampled_from([*DATATYPES, "FP128"]) | _JSON_VALUES,
     "shape": st.lists(st.integers(-1, 5), max_size=3) | _JSON_VALUES},
    optional={"data": _JSON_VALUES, "parameters": st.dictionaries(st.sampled_from(["binary_data_size", "content_type"]), _JSON_VALUES, max_size=2)},
)
_REQUESTS = st.fixed_dictionaries(
    {"inputs": st.lists(_TENSORS, max_size=5)},
    optional={"outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["predict", "predict_proba", "x"])}), max_size=2),
              "id": _JSON_VALUES, "parameters": st.dictionaries(st.just("binary_data_output"), _JSON_VALUES, max_size=1)},
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_REQUESTS, path=st.sampled_from(["reg", "clf", "mixed"]))
def test_no_request_shape_makes_a_5xx(client, models, body, path):
    response = client.post(f"/v2/models/{path}/infer", data=json.dumps(body))
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    assert response.status_code == 200 or response.get_json()["error"]
