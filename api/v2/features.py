"""From decoded V2 input tensors to a model's rows, checked by the same rules as the predict routes.

Two layouts are accepted: one ``[N, F]`` tensor (any name) in signature order, or one tensor per
feature, named by its feature name, of shape ``[N]`` or ``[N, 1]`` (MLServer's pandas codec). Typed
numbers for an all-numeric model go to :func:`registry.serving.inputs.rows_from_array`; anything else
(text columns, BYTES tensors) goes through :func:`registry.serving.inputs.rows_from_columns`.
"""
from collections.abc import Callable
from functools import cached_property

import numpy as np

from api.errors import ProblemError
from api.v2.metadata import EXPLANATION, PREDICT_PROBA, output_names
from api.v2.tensors import InferRequest, Tensor
from registry.artifacts.signature import Signature
from registry.serving.cache import ServableModel
from registry.errors import InvalidInput, listed
from registry.serving.explanations import ExplainAsk, explain_asked
from registry.serving.inputs import ModelInput, rows_from_array, rows_from_columns


class TensorInput:
    """An inference request, decoded by ``decode`` (REST's JSON or binary tensor data, gRPC's message) when the
    answering version asks for its rows."""

    def __init__(self, decode: Callable[[], InferRequest], max_rows: int):
        self._decode, self._max_rows = decode, max_rows

    @cached_property
    def decoded(self) -> InferRequest:
        """The request's id, input tensors and requested outputs (a 400 when malformed)."""
        return self._decode()

    def rows(self, signature: Signature) -> ModelInput:
        """The input tensors as the version's rows."""
        return model_input(self.decoded.inputs, signature, self._max_rows)

    def wants_probabilities(self, servable: ServableModel) -> bool:
        """Whether ``predict_proba`` is among the requested outputs; a 400 for an output the version lacks."""
        outputs = self.decoded.outputs
        if outputs is None:
            return False
        known = output_names(servable)
        unknown = [name for name in outputs if name not in known]
        if unknown:
            raise ProblemError(
                400,
                f"unknown output(s) {', '.join(unknown)}; version {servable.version} of {servable.model!r} "
                f"answers {' and '.join(known)}",
            )
        return PREDICT_PROBA in outputs

    def asked_explanation(self, servable: ServableModel) -> ExplainAsk | None:
        """What the ``explanation`` output asks, when requested: its parameter ``space`` may name the space
        (a 400 for any other parameter but ``binary_data``, or a space that is not one)."""
        decoded = self.decoded
        if EXPLANATION not in (decoded.outputs or ()):
            return None
        parameters = {key: value for key, value in decoded.output_parameters.get(EXPLANATION, {}).items()
                      if key != "binary_data"}
        try:
            return explain_asked(parameters or True, what="explanation")
        except InvalidInput as error:
            raise ProblemError(400, error.detail) from None


def model_input(tensors: list[Tensor], signature: Signature, max_rows: int) -> ModelInput:
    """The model's input from ``tensors``, or a 400/413 that says what to change."""
    names = signature.names
    by_feature = [tensor for tensor in tensors if tensor.name in names]
    if by_feature:
        columns = _columns(tensors, names)
    elif len(tensors) == 1:
        columns = _matrix_columns(tensors[0], names)
    else:
        raise ProblemError(
            400,
            f"inputs {', '.join(t.name for t in tensors)} are named after no feature; send one [N, {len(names)}] "
            f"tensor, or one tensor per feature named {_listed(names)}",
        )
    if not len(columns[0]):
        raise ProblemError(400, "the inputs hold no rows; send at least one")
    if signature.all_numeric and all(column.dtype != object for column in columns):
        with np.errstate(over="ignore"):
            matrix = np.column_stack([column.astype(np.float64, copy=False) for column in columns])
        return rows_from_array(matrix, signature, max_rows)
    # Booleans go in as 0 and 1, as they do in a numeric model's float rows.
    cells = [(column.astype(np.int64) if column.dtype == np.bool_ else column).tolist() for column in columns]
    rows = list(map(list, zip(*cells)))
    return rows_from_columns(names, rows, signature, max_rows=max_rows)


def _columns(tensors: list[Tensor], names: list[str]) -> list[np.ndarray]:
    known = set(names)
    given = [tensor.name for tensor in tensors]
    unknown = [name for name in given if name not in known]
    if unknown:
        raise ProblemError(400, f"input(s) {listed(unknown)} are named after no feature; the features are {_listed(names)}")
    duplicated = sorted({name for name in given if given.count(name) > 1})
    if duplicated:
        raise ProblemError(400, f"input(s) {listed(duplicated)} are sent more than once; send each feature once")
    missing = [name for name in names if name not in given]
    if missing:
        raise ProblemError(400, f"missing feature(s) {listed(missing)}; send one tensor per feature: {_listed(names)}")
    by_name = {tensor.name: tensor for tensor in tensors}
    columns = [_column(by_name[name]) for name in names]
    rows = {len(column) for column in columns}
    if len(rows) > 1:
        raise ProblemError(400, f"the feature tensors have different numbers of rows ({', '.join(map(str, sorted(rows)))}); send the same N for each")
    return columns


def _column(tensor: Tensor) -> np.ndarray:
    shape = tensor.shape
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return tensor.values
    raise ProblemError(400, f"input {tensor.name!r} has shape {list(shape)}; a feature tensor has shape [N] or [N, 1]")


def _matrix_columns(tensor: Tensor, names: list[str]) -> list[np.ndarray]:
    width = len(names)
    if len(tensor.shape) != 2 or tensor.shape[1] != width:
        raise ProblemError(
            400,
            f"input {tensor.name!r} has shape {list(tensor.shape)}; send shape [N, {width}] with the features "
            f"{_listed(names)} in that order, or one tensor per feature named by it",
        )
    matrix = tensor.values.reshape(tensor.shape)
    return [matrix[:, k] for k in range(width)]


def _listed(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 20 else f"{', '.join(names[:10])}, ... ({len(names)} in all)"
