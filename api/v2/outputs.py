"""Open Inference Protocol answers on the wire: output tensors in JSON, or binary after a JSON header."""
from dataclasses import dataclass
from itertools import chain

import numpy as np
import orjson

from api.v2.tensors import DATATYPES, LENGTH


@dataclass(frozen=True)
class Output:
    """An output tensor to answer with."""

    name: str
    values: np.ndarray
    binary: bool
    parameters: dict | None = None


def encode_response(*, model_name: str, model_version: str, request_id: str | None, outputs: list[Output]) -> tuple[bytes, dict]:
    """The response body and the headers it needs (Inference-Header-Content-Length when binary)."""
    described, chunks = [], []
    for output in outputs:
        datatype = _datatype_of(output.values)
        tensor = {"name": output.name, "datatype": datatype, "shape": list(output.values.shape)}
        parameters = dict(output.parameters or {})
        if output.binary:
            chunk = _to_binary(output.values, datatype)
            parameters["binary_data_size"] = len(chunk)
            chunks.append(chunk)
        else:
            tensor["data"] = output.values.ravel() if datatype != "BYTES" else output.values.ravel().tolist()
        if parameters:
            tensor["parameters"] = parameters
        described.append(tensor)
    answer = {"model_name": model_name, "model_version": model_version, "outputs": described}
    if request_id is not None:
        answer["id"] = request_id
    header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, {}
    return b"".join([header, *chunks]), {"Inference-Header-Content-Length": str(len(header))}


def _datatype_of(values: np.ndarray) -> str:
    kind = values.dtype.kind
    if kind == "f":
        return "FP64"
    if kind == "i":
        return "INT64"
    if kind == "u":
        return "UINT64"
    if kind == "b":
        return "BOOL"
    return "BYTES"


def _to_binary(values: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        encoded = [str(value).encode("utf-8") for value in values.ravel().tolist()]
        return b"".join(chain.from_iterable((LENGTH.pack(len(item)), item) for item in encoded))
    return np.ascontiguousarray(values, dtype=DATATYPES[datatype]).tobytes()
