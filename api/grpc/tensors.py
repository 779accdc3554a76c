"""Open Inference Protocol tensors in gRPC messages: a ``ModelInferRequest`` decoded into the same
:class:`api.v2.tensors.InferRequest` the REST routes decode JSON into (checked by the same rules, in the same
words), and the REST routes' outputs as a ``ModelInferResponse``.

An input's values come in its ``contents`` (the typed field of its datatype: ``fp64_contents`` for FP64,
``int_contents`` for INT8 to INT32…) or, for every input at once, in ``raw_input_contents`` (laid out as the
binary tensor data extension lays them out). Outputs are answered in ``raw_output_contents``, as Triton does:
tritonclient reads only those, KServe's client both.
"""
import numpy as np
import orjson

from api.errors import ProblemError
from api.grpc.protocol import InferParameter, ModelInferRequest, ModelInferResponse
from api.v2.outputs import Output, datatype_of, to_binary
from api.v2.tensors import DATATYPES, InferRequest, Tensor, element_count, from_binary
from registry.errors import listed

# The field of InferTensorContents each datatype's values go in (FP16 has none: raw_input_contents only).
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_FIELDS = frozenset(CONTENTS.values())


def read_request(message: ModelInferRequest) -> InferRequest:
    """The inputs and requested outputs of ``message``; a 400 that says what to change when malformed."""
    if not message.inputs:
        raise ProblemError(400, "'inputs' must hold at least one tensor (name, datatype, shape, contents)")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise ProblemError(400, f"raw_input_contents holds {len(raw)} tensors for {len(message.inputs)} inputs; send one "
                                "per input, in the order of inputs, or send every input's values in its contents")
    tensors = [_tensor(tensor, raw[index] if raw else None) for index, tensor in enumerate(message.inputs)]
    outputs, output_parameters = None, {}
    if message.outputs:
        outputs = {}
        for output in message.outputs:
            parameters = parameters_of(output.parameters)
            if parameters.get("classification"):
                raise ProblemError(400, "the classification extension is not supported; request predict_proba instead")
            outputs[output.name] = None
            output_parameters[output.name] = parameters
    return InferRequest(message.id or None, tensors, outputs, False, output_parameters)


def _tensor(tensor, raw: bytes | None) -> Tensor:
    name = tensor.name
    if not name:
        raise ProblemError(400, "every input tensor needs a 'name'")
    shape = list(tensor.shape)
    count = element_count(name, tensor.datatype, shape)
    datatype = tensor.datatype
    given = [field.name for field, _ in tensor.contents.ListFields() if field.name in _FIELDS]
    if raw is not None:
        if given:
            raise ProblemError(400, f"input {name!r} has contents and raw_input_contents; send its values in one of them")
        return Tensor(name, datatype, tuple(shape), from_binary(raw, datatype, count, name))
    expected = CONTENTS.get(datatype)
    if given and given != [expected]:
        where = f"send them in {expected}" if expected else "send FP16 values in raw_input_contents"
        raise ProblemError(400, f"input {name!r} is {datatype} but its values are in {listed(given)}; {where}")
    values = list(getattr(tensor.contents, expected)) if expected else []
    if len(values) != count:
        raise ProblemError(400, f"input {name!r}: its shape holds {count} values but its contents have {len(values)}; "
                                "make them agree")
    return Tensor(name, datatype, tuple(shape), _array(values, datatype, name))


def _array(values: list, datatype: str, name: str) -> np.ndarray:
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        try:
            array[:] = [value.decode("utf-8") for value in values]
        except UnicodeDecodeError:
            raise ProblemError(400, f"input {name!r}: BYTES elements must be UTF-8 text") from None
        return array
    try:
        return np.array(values, dtype=DATATYPES[datatype])
    except OverflowError:
        raise ProblemError(400, f"input {name!r}: a value is out of the range of {datatype}; use a wider datatype") from None


def parameters_of(parameters) -> dict:
    """A message's ``parameters`` map as plain values (each parameter's one set choice)."""
    return {key: getattr(value, value.WhichOneof("parameter_choice")) for key, value in parameters.items()
            if value.WhichOneof("parameter_choice") is not None}


def parameter(value: object) -> InferParameter:
    """``value`` as an ``InferParameter``: booleans, integers and text as such, anything else (a number, a list of
    classes, an explanation's space) as its JSON text (KServe's message has no field for a float)."""
    if isinstance(value, bool):
        return InferParameter(bool_param=value)
    if isinstance(value, int):
        return InferParameter(int64_param=value)
    if isinstance(value, str):
        return InferParameter(string_param=value)
    return InferParameter(string_param=orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode())


def response(*, model_name: str, model_version: str, request_id: str | None, outputs: list[Output]) -> ModelInferResponse:
    """The answer: each output's name, datatype, shape and parameters, its values in ``raw_output_contents``."""
    answer = ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id or "")
    for output in outputs:
        datatype = datatype_of(output.values)
        tensor = answer.outputs.add(name=output.name, datatype=datatype, shape=list(output.values.shape))
        for key, value in (output.parameters or {}).items():
            tensor.parameters[key].CopyFrom(parameter(value))
        answer.raw_output_contents.append(to_binary(output.values, datatype))
    return answer
