"""The gRPC edge's decoding and statuses without a server: a ModelInferRequest's tensors read by the rules and
in the words of V2 REST, parameters both ways, each HTTP status's gRPC code, the caller's deadline."""
import time

import grpc
import numpy as np
import pytest

from api.errors import ProblemError
from api.grpc import protocol
from api.grpc.service import Caller, _address, code_of
from api.grpc.tensors import parameter, parameters_of, read_request
from registry import tracing


def _request(datatype="FP64", shape=(1, 2), **contents) -> protocol.ModelInferRequest:
    request = protocol.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=list(shape))
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    return request


def test_typed_contents_and_raw_contents_decode_to_the_same_tensor():
    typed = read_request(_request(fp64_contents=[1.5, -2.0]))
    raw = _request()
    raw.raw_input_contents.append(np.array([1.5, -2.0], dtype="<f8").tobytes())

    assert typed.inputs[0].values.tolist() == read_request(raw).inputs[0].values.tolist() == [1.5, -2.0]
    assert typed.inputs[0].shape == (1, 2) and typed.outputs is None


def test_small_integers_bytes_and_booleans_come_from_their_own_fields():
    assert read_request(_request("INT8", (2,), int_contents=[-3, 7])).inputs[0].values.dtype == np.int8
    assert read_request(_request("BYTES", (2,), bytes_contents=[b"red", b"blue"])).inputs[0].values.tolist() == ["red", "blue"]
    assert read_request(_request("BOOL", (2,), bool_contents=[True, False])).inputs[0].values.tolist() == [True, False]


@pytest.mark.parametrize("request_, fragment", [
    (lambda: _request(int64_contents=[1, 2]), "input 'x' is FP64 but its values are in int64_contents; send them in fp64_contents"),
    (lambda: _request("FP16", (1,), fp32_contents=[1.0]), "send FP16 values in raw_input_contents"),
    (lambda: _request(fp64_contents=[1.0]), "its shape holds 2 values but its contents have 1"),
    (lambda: _request("INT8", (1,), int_contents=[300]), "out of the range of INT8"),
    (lambda: _request("BYTES", (1,), bytes_contents=[b"\xff"]), "BYTES elements must be UTF-8 text"),
    (lambda: _request("FP99", (1,)), "unknown datatype 'FP99'"),
    (lambda: protocol.ModelInferRequest(model_name="m"), "at least one tensor"),
])
def test_malformed_tensors_are_400_saying_what_to_change(request_, fragment):
    with pytest.raises(ProblemError) as refused:
        read_request(request_())
    assert refused.value.status == 400 and fragment in refused.value.detail


def test_raw_contents_must_cover_every_input_and_exclude_typed_ones():
    both = _request(fp64_contents=[1.0, 2.0])
    both.raw_input_contents.append(b"\0" * 16)
    with pytest.raises(ProblemError, match="has contents and raw_input_contents"):
        read_request(both)
    two = _request()
    two.inputs.add(name="y", datatype="FP64", shape=[1])
    two.raw_input_contents.append(b"\0" * 16)
    with pytest.raises(ProblemError, match="raw_input_contents holds 1 tensors for 2 inputs"):
        read_request(two)


def test_requested_outputs_and_their_parameters_are_read_and_classification_is_refused():
    request = _request(fp64_contents=[1.0, 2.0])
    request.outputs.add(name="explanation").parameters["space"].string_param = "probability"
    decoded = read_request(request)
    assert decoded.outputs == {"explanation": None}
    assert decoded.output_parameters == {"explanation": {"space": "probability"}}
    request.outputs.add(name="predict").parameters["classification"].int64_param = 2
    with pytest.raises(ProblemError, match="classification extension is not supported"):
        read_request(request)


def test_parameters_go_out_as_their_kind_and_anything_else_as_json():
    assert parameter(True).bool_param is True and parameter(3).int64_param == 3
    assert parameter(0.5).string_param == "0.5" and parameter("a").string_param == "a"
    assert parameter(["no", "yes"]).string_param == '["no","yes"]'
    request = _request()
    request.parameters["flag"].CopyFrom(parameter(True))
    assert parameters_of(request.parameters) == {"flag": True}


@pytest.mark.parametrize("status, code", [
    (400, grpc.StatusCode.INVALID_ARGUMENT), (413, grpc.StatusCode.INVALID_ARGUMENT),
    (401, grpc.StatusCode.UNAUTHENTICATED), (403, grpc.StatusCode.PERMISSION_DENIED),
    (404, grpc.StatusCode.NOT_FOUND), (410, grpc.StatusCode.NOT_FOUND),
    (429, grpc.StatusCode.RESOURCE_EXHAUSTED), (503, grpc.StatusCode.UNAVAILABLE), (500, grpc.StatusCode.INTERNAL),
])
def test_each_http_status_has_its_grpc_code(status, code):
    assert code_of(status) == code


def test_peers_give_their_address():
    assert _address("ipv4:127.0.0.1:50123") == "127.0.0.1"
    assert _address("ipv6:[::1]:50123") == "::1"


class _Context:
    def __init__(self, remaining):
        self.remaining = remaining

    def time_remaining(self):
        return self.remaining


def test_the_callers_grpc_timeout_is_the_deadline_counted_from_its_arrival():
    arrived = time.monotonic() - 1.0  # a second ago; 2 s remain now
    deadline = Caller(_Context(2.0), {}, arrived, tracing.UNTRACED).deadline()
    assert deadline.arrived == arrived and deadline.seconds == pytest.approx(3.0, abs=0.05)
    assert Caller(_Context(None), {}, arrived, tracing.UNTRACED).deadline() is None
