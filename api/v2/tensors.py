"""Open Inference Protocol requests on the wire: the inputs of an inference request, JSON or binary.

JSON data may be flat (row-major) or nested. With Triton's binary tensor data extension the body is
the JSON header (``Inference-Header-Content-Length`` bytes long) followed by each binary tensor's
``binary_data_size`` bytes, in the order of ``inputs``: little-endian numbers, one byte per BOOL,
and for BYTES a 4-byte little-endian length before each element.
"""
import math
import struct
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from api.content import parse_body
from api.errors import ProblemError
from registry.errors import listed

DATATYPES = {
    "BOOL": np.dtype(np.bool_),
    **{f"INT{bits}": np.dtype(f"<i{bits // 8}") for bits in (8, 16, 32, 64)},
    **{f"UINT{bits}": np.dtype(f"<u{bits // 8}") for bits in (8, 16, 32, 64)},
    **{f"FP{bits}": np.dtype(f"<f{bits // 8}") for bits in (16, 32, 64)},
    "BYTES": np.dtype(object),
}
_JSON_TYPES = {"BOOL": {bool}, "BYTES": {str}}
_INTEGER_TYPES = {int}
_FLOAT_TYPES = {int, float}
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_TENSOR_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
LENGTH = struct.Struct("<I")  # BYTES elements: a little-endian length before each


@dataclass(frozen=True)
class Tensor:
    """A decoded input: its name, datatype, shape and values (flat, row-major)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: np.ndarray


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request."""

    id: str | None
    inputs: list[Tensor]
    outputs: dict[str, bool] | None  # requested output name -> binary; None: the default output
    binary_output: bool  # the request-wide ``binary_data_output``
    output_parameters: dict[str, dict] = field(default_factory=dict)  # requested output name -> its parameters


def read_request(body: bytes, header_length: str | None, max_rows: int) -> InferRequest:
    """Decode an inference request body; ``header_length`` is the Inference-Header-Content-Length. Its JSON is
    parsed as every JSON body is (``api/content.py``: bounded by a batch of ``max_rows``)."""
    header, binary = _split(body, header_length)
    document = parse_body(header, max_rows)
    if not isinstance(document, dict):
        raise ProblemError(400, "the inference request must be a JSON object with an 'inputs' list")
    unknown = sorted(document.keys() - _REQUEST_KEYS)
    if unknown:
        raise ProblemError(400, f"unexpected key(s) {listed(unknown)}; a request has id, parameters, inputs, outputs")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProblemError(400, "'id' must be a string")
    parameters = _object(document.get("parameters"), "the request's parameters")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(item, dict) for item in inputs):
        raise ProblemError(400, "'inputs' must be a non-empty list of tensors ({name, shape, datatype, data})")
    tensors, used = [], 0
    for item in inputs:
        tensor, used = _tensor(item, binary, used)
        tensors.append(tensor)
    if used != len(binary):
        raise ProblemError(
            400,
            f"{len(binary)} bytes follow the JSON header (Inference-Header-Content-Length) but the inputs' "
            f"binary_data_size add up to {used}; make the header length and the sizes match the body",
        )
    outputs = document.get("outputs")
    return InferRequest(request_id, tensors, _outputs(outputs), _flag(parameters, "binary_data_output"),
                        {output["name"]: output.get("parameters") or {} for output in outputs or ()})


# -- request -----------------------------------------------------------------------------------


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.strip().isdigit():
        raise ProblemError(400, f"Inference-Header-Content-Length must be a number of bytes, not {header_length!r}")
    length = int(header_length)
    if not 0 < length <= len(body):
        raise ProblemError(
            400,
            f"Inference-Header-Content-Length is {length} but the body has {len(body)} bytes; "
            "send the length of the JSON header that starts the body",
        )
    return body[:length], body[length:]


def _tensor(item: dict, binary: bytes, used: int) -> tuple[Tensor, int]:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ProblemError(400, "every input tensor needs a 'name' (a string)")
    unknown = sorted(item.keys() - _TENSOR_KEYS)
    if unknown:
        raise ProblemError(400, f"input {name!r}: unexpected key(s) {listed(unknown)}; a tensor has name, shape, datatype, parameters, data")
    datatype, shape = item.get("datatype"), item.get("shape")
    count = element_count(name, datatype, shape)
    parameters = _object(item.get("parameters"), f"input {name!r}'s parameters")
    if "shared_memory_region" in parameters:
        raise ProblemError(400, f"input {name!r}: shared memory is not supported; send the data in JSON or as binary data")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in item:
            raise ProblemError(400, f"input {name!r}: send its 'data', or its binary_data_size and the bytes after the JSON")
        values = _from_json(item["data"], datatype, count, name)
    else:
        if type(size) is not int or size < 0 or used + size > len(binary):
            raise ProblemError(
                400,
                f"input {name!r}: binary_data_size {size!r} runs past the {len(binary)} bytes after the JSON header; "
                "check Inference-Header-Content-Length and the sizes",
            )
        values = from_binary(binary[used : used + size], datatype, count, name)
        used += size
    return Tensor(name, datatype, tuple(shape), values), used


def element_count(name: str, datatype: object, shape: object) -> int:
    """The number of values input ``name`` holds, by its ``shape``; a 400 for a datatype the protocol lacks, or a
    shape that is not a list of non-negative integers."""
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise ProblemError(400, f"input {name!r}: unknown datatype {datatype!r}; use one of {', '.join(DATATYPES)}")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise ProblemError(400, f"input {name!r}: shape must be a list of non-negative integers, e.g. [2, 8]")
    return math.prod(shape)


def _from_json(data: object, datatype: str, count: int, name: str) -> np.ndarray:
    flat = _flatten(data, name)
    if len(flat) != count:
        raise ProblemError(400, f"input {name!r}: its shape holds {count} values but its data has {len(flat)}; make them agree")
    found = set(map(type, flat))
    allowed = _JSON_TYPES.get(datatype) or (_FLOAT_TYPES if datatype.startswith("FP") else _INTEGER_TYPES)
    if not found <= allowed:
        odd = next(value for value in flat if type(value) not in allowed)
        raise ProblemError(400, f"input {name!r} is {datatype} but its data holds {_describe(odd)}; {_expected(datatype)}")
    try:
        with np.errstate(over="ignore"):  # FP16/FP32 overflow becomes infinity, refused with its place later
            return np.array(flat, dtype=DATATYPES[datatype])
    except OverflowError:
        raise ProblemError(400, f"input {name!r}: a value is out of the range of {datatype}; use a wider datatype") from None


def _flatten(data: object, name: str) -> list:
    if not isinstance(data, list):
        raise ProblemError(400, f"input {name!r}: data must be a list (flat, row-major, or nested)")
    while data and all(type(item) is list for item in data):
        data = list(chain.from_iterable(data))
    if any(type(item) is list for item in data):
        raise ProblemError(400, f"input {name!r}: data mixes lists and values; nest it evenly or send it flat")
    return data


def from_binary(chunk: bytes, datatype: str, count: int, name: str) -> np.ndarray:
    """The ``count`` values of input ``name`` in ``chunk``, as the binary tensor data extension (and gRPC's
    ``raw_input_contents``) lay them out; a 400 that says what to change when they do not fit."""
    if datatype == "BYTES":
        return _bytes_elements(chunk, count, name)
    dtype = DATATYPES[datatype]
    if len(chunk) != count * dtype.itemsize:
        raise ProblemError(
            400,
            f"input {name!r}: its shape holds {count} {datatype} values ({count * dtype.itemsize} bytes) but its "
            f"binary_data_size is {len(chunk)}; make them agree",
        )
    if datatype == "BOOL":
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if (raw > 1).any():
            raise ProblemError(400, f"input {name!r}: BOOL bytes must be 0 or 1")
        return raw.astype(np.bool_)
    return np.frombuffer(chunk, dtype=dtype)


def _bytes_elements(chunk: bytes, count: int, name: str) -> np.ndarray:
    elements, position = [], 0
    while position < len(chunk):
        if position + 4 > len(chunk):
            raise ProblemError(400, f"input {name!r}: BYTES data ends inside an element's 4-byte length")
        (length,) = LENGTH.unpack_from(chunk, position)
        position += 4
        if position + length > len(chunk):
            raise ProblemError(400, f"input {name!r}: a BYTES element of {length} bytes runs past binary_data_size")
        try:
            elements.append(chunk[position : position + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise ProblemError(400, f"input {name!r}: BYTES elements must be UTF-8 text") from None
        position += length
    if len(elements) != count:
        raise ProblemError(400, f"input {name!r}: its shape holds {count} values but its BYTES data has {len(elements)}; make them agree")
    values = np.empty(count, dtype=object)
    values[:] = elements
    return values


def _outputs(outputs: object) -> dict[str, bool] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
        raise ProblemError(400, "'outputs' must be a list of {name, parameters} objects")
    requested = {}
    for output in outputs:
        parameters = _object(output.get("parameters"), f"output {output['name']!r}'s parameters")
        if parameters.get("classification"):
            raise ProblemError(400, "the classification extension is not supported; request predict_proba instead")
        requested[output["name"]] = _flag(parameters, "binary_data", default=None)
    return requested


def _object(value: object, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProblemError(400, f"{what} must be an object")
    return value


def _flag(parameters: dict, key: str, default: bool | None = False) -> bool | None:
    value = parameters.get(key, default)
    if value is not default and not isinstance(value, bool):
        raise ProblemError(400, f"parameter {key} must be true or false")
    return value


def _expected(datatype: str) -> str:
    if datatype == "BYTES":
        return "send strings"
    if datatype == "BOOL":
        return "send true or false"
    return "send numbers (strings, booleans and null are not numbers), or declare the tensor BYTES"


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    return f"a {type(value).__name__} ({value!r})"[:60]
