"""Open Inference Protocol answers on the wire: output tensors in JSON, or binary after a JSON header."""
from dataclasses import dataclass
from itertools import chain

import numpy as np
import orjson

from api.v2.metadata import EXPLANATION, PREDICT, PREDICT_PROBA
from api.v2.tensors import DATATYPES, LENGTH, InferRequest
from registry.serving.running import Prediction


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
        datatype = datatype_of(output.values)
        tensor = {"name": output.name, "datatype": datatype, "shape": list(output.values.shape)}
        parameters = dict(output.parameters or {})
        if output.binary:
            chunk = to_binary(output.values, datatype)
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


def datatype_of(values: np.ndarray) -> str:
    """The protocol's datatype of an output's values."""
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


def to_binary(values: np.ndarray, datatype: str) -> bytes:
    """``values`` as binary tensor data (and gRPC's ``raw_output_contents``): little-endian numbers, one byte per
    BOOL, a 4-byte length before each BYTES element."""
    if datatype == "BYTES":
        encoded = [str(value).encode("utf-8") for value in values.ravel().tolist()]
        return b"".join(chain.from_iterable((LENGTH.pack(len(item)), item) for item in encoded))
    return np.ascontiguousarray(values, dtype=DATATYPES[datatype]).tobytes()


def _explanation(prediction: Prediction, binary: bool) -> Output:
    """One JSON document a row, as the predict routes give each; the space (and any note) as parameters."""
    described = prediction.explanations.to_dict()
    rows = described.pop("explanations")
    documents = np.empty(len(rows), dtype=object)
    documents[:] = [orjson.dumps(row).decode() for row in rows]
    return Output(EXPLANATION, documents, binary, described)


def outputs_of(prediction: Prediction, decoded: InferRequest) -> list[Output]:
    """The output tensors ``decoded`` asks of ``prediction`` (``predict`` alone when it names none)."""
    wanted = decoded.outputs or {PREDICT: None}
    outputs = []
    for name in wanted:
        binary = decoded.binary_output if wanted[name] is None else wanted[name]
        if name == PREDICT:
            outputs.append(Output(PREDICT, np.asarray(prediction.predictions), binary))
        elif name == EXPLANATION:
            outputs.append(_explanation(prediction, binary))
        else:
            classes = {"classes": prediction.classes}
            outputs.append(Output(PREDICT_PROBA, np.asarray(prediction.probabilities, dtype=np.float64), binary, classes))
    return outputs
