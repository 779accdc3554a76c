"""Turn a prediction request body into the model's input, or an InvalidInput that says what to fix.

The result goes straight to ``estimator.predict``: a float64 ``ndarray`` in signature order when
every feature is numeric, otherwise a ``DataFrame`` with columns in signature order (numeric
columns float64, categorical columns ``object`` holding Python strings).

Rules a caller sees:
- Rows are numbered from 0 as in the JSON array; CSV problems name the file's line instead.
- Numbers must be JSON numbers: booleans, numeric strings, null, NaN and ±Infinity are refused; a
  version whose signature says ``missing_values`` (a model whose library defines where a missing
  value goes: XGBoost, LightGBM, a bare HistGradientBoosting) takes ``null`` as a missing number (NaN).
- A categorical (non-numeric) feature takes a string; a JSON integer is accepted as its decimal
  text (``94110`` -> ``"94110"``, what the same value in a CSV cell gives), while floats, booleans
  and null are refused because they have no single obvious text form.
- CSV cells are text, parsed as numbers for numeric features; an empty cell is a missing value,
  refused unless the signature says ``missing_values``; header names are stripped of surrounding blanks.
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass
from itertools import chain, islice
from typing import TYPE_CHECKING, Callable, NamedTuple, Protocol, Union

import numpy as np

from registry.artifacts.signature import Signature
from registry.errors import BatchTooLarge, InvalidInput
from registry.serving.cache import ServableModel
from registry.serving.explanations import ExplainAsk
from registry.serving.json_rows import NumberRows

if TYPE_CHECKING:
    import pandas as pd

ModelInput = Union[np.ndarray, "pd.DataFrame"]

_ROW_KEYS = ("instances", "dataframe_split", "dataframe_records")
_ALLOWED_KEYS = frozenset({*_ROW_KEYS, "return_proba", "explain"})
_ONE_OF = "body must have exactly one of instances, dataframe_split, dataframe_records"
_SPLIT_KEYS = frozenset({"columns", "data", "index"})
_LIST = frozenset({list})
_NUMBER_TYPES = frozenset({int, float})
_MAX_LISTED_PROBLEMS = 20


class _Cells(NamedTuple):
    """How one body format turns its cells into numbers and categories, and how it says a number is missing."""

    number: Callable[[object], float]
    category: Callable[[object], str]
    fast_matrix: Callable[[list, int], np.ndarray | None]
    missing: object  # JSON null, or an empty CSV cell


class PredictionInput(Protocol):
    """A request to predict in one format (a JSON body, CSV, V2 tensors), read once the version that
    answers it is known: its signature says what the rows must be, its outputs what may be asked."""

    def rows(self, signature: Signature) -> ModelInput:
        """The request's rows, checked against ``signature``, or an InvalidInput that says what to fix."""

    def wants_probabilities(self, servable: ServableModel) -> bool:
        """Whether the caller asked for class probabilities of ``servable``."""

    def asked_explanation(self, servable: ServableModel) -> ExplainAsk | None:
        """The explanation of each row by ``servable`` the caller asked for (None: none)."""


@dataclass(frozen=True)
class JsonInput:
    """A decoded JSON predict body (``instances``, ``dataframe_split`` or ``dataframe_records``)."""

    body: object
    max_rows: int
    return_proba: bool = False
    explain: ExplainAsk | None = None

    def rows(self, signature: Signature) -> ModelInput:
        """The body's rows in signature order."""
        return rows_from_json(self.body, signature, self.max_rows)

    def wants_probabilities(self, servable: ServableModel) -> bool:
        """What the body (or the query) asked."""
        return self.return_proba

    def asked_explanation(self, servable: ServableModel) -> ExplainAsk | None:
        """What the body (or the query) asked."""
        return self.explain


@dataclass(frozen=True)
class CsvInput:
    """A CSV predict body: a header row, then one row per instance."""

    text: str
    max_rows: int
    return_proba: bool = False
    explain: ExplainAsk | None = None

    def rows(self, signature: Signature) -> ModelInput:
        """The file's rows in signature order."""
        return rows_from_csv(self.text, signature, self.max_rows)

    def wants_probabilities(self, servable: ServableModel) -> bool:
        """What the query asked."""
        return self.return_proba

    def asked_explanation(self, servable: ServableModel) -> ExplainAsk | None:
        """What the query asked."""
        return self.explain


def rows_from_json(body: object, signature: Signature, max_rows: int) -> ModelInput:
    """Validate a decoded JSON predict body and return the model's input in signature order."""
    key = _row_key(body)
    if key == "dataframe_split":
        split = _checked_split(body[key])
        return rows_from_columns(split["columns"], split["data"], signature, max_rows=max_rows, what="dataframe_split.data")
    return rows_from_records(body[key], signature, max_rows, what=key)


def rows_from_records(records: object, signature: Signature, max_rows: int, *, what: str = "instances") -> ModelInput:
    """Rows given one by one, each a list in signature order or an object keyed by feature name (or read already,
    :class:`NumberRows`: their matrix where the signature takes only numbers, as many as each row holds)."""
    if isinstance(records, NumberRows):
        if signature.all_numeric and records.matrix.shape[1] == len(signature.features):
            _check_count(len(records.matrix), f"{what} is empty: send at least one row", max_rows)
            return records.matrix
        records = records.lists()  # checked cell by cell below, which words what does not fit
    rows = _batch(records, what, max_rows)
    if what == "dataframe_records" or isinstance(rows[0], dict):
        rows = _rows_by_name(rows, signature.names)
    return _model_input(rows, signature, _JSON_CELLS, "row {}".format)


def rows_from_columns(columns: object, data: object, signature: Signature, *, max_rows: int,
                      what: str = "data", first_row: int = 0) -> ModelInput:
    """Rows given as lists in the order of ``columns`` (feature names), rearranged into signature order;
    problems name rows from ``first_row`` (a batch job's rows are numbered within their partition)."""
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        raise InvalidInput(f"dataframe_split.columns must be a list of feature names, got {_describe(columns)}")
    rows = _batch(data, what, max_rows)
    names = signature.names

    def where(i: int) -> str:
        return f"row {first_row + i}"

    if columns != names:
        rows = _reorder(rows, columns, names, where)
    return _model_input(rows, signature, _JSON_CELLS, where)


def rows_from_csv_columns(columns: list[str], data: list[list], signature: Signature, *, first_row: int = 0) -> ModelInput:
    """CSV cells (text) already split into rows in the order of ``columns``, checked and parsed as the CSV
    route parses a body's cells; problems name rows from ``first_row`` (a batch job's CSV files)."""
    _check_count(len(data), "there are no rows: send at least one", max(len(data), 1))

    def where(i: int) -> str:
        return f"row {first_row + i}"

    if columns != signature.names:
        data = _reorder(data, columns, signature.names, where)
    return _model_input(data, signature, _CSV_CELLS, where)


def rows_from_csv(text: str, signature: Signature, max_rows: int) -> ModelInput:
    """Validate a CSV predict body (header row, then one row per instance) and return the model's input."""
    # A BOM survives when the client wrote UTF-8-sig and the caller decoded plain UTF-8.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)
    try:
        header = next((record for record in reader if record), None)
        if header is None:
            raise InvalidInput("the CSV body is empty: send a header row, then one row per instance")
        records, lines = [], []
        for record in reader:
            if record:  # csv yields [] for a blank line
                records.append(record)
                lines.append(reader.line_num)
    except csv.Error as error:
        raise InvalidInput(f"the CSV body could not be parsed at line {reader.line_num}: {error}") from None
    _check_count(len(records), "the CSV has a header but no rows: send at least one row", max_rows)
    columns = [name.strip() for name in header]

    def where(i: int) -> str:
        return f"line {lines[i]}"

    if columns != signature.names:
        records = _reorder(records, columns, signature.names, where)
    return _model_input(records, signature, _CSV_CELLS, where)


def rows_from_array(matrix: np.ndarray, signature: Signature, max_rows: int, *, first_row: int = 0) -> np.ndarray:
    """Check a float64 ``[rows, features]`` array in signature order (typed tensors, a batch job's numeric
    columns) for a numeric model; problems name rows from ``first_row``."""
    _check_count(len(matrix), "the batch is empty: send at least one row", max_rows)
    names = signature.names
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise InvalidInput(_count_message(names, matrix.shape[1] if matrix.ndim == 2 else 1))
    if np.isfinite(np.add.reduce(matrix, axis=None)):
        return matrix  # a NaN or an infinity anywhere would have made the sum one: every number is finite
    bad = np.isinf(matrix) if signature.missing else ~np.isfinite(matrix)  # NaN: a missing value, where taken
    if bad.any():
        cells = np.argwhere(bad)
        problems = {
            f"row {first_row + i}, feature {names[j]}": f"expected a finite number, got {_describe(float(matrix[i, j]))}"
            for i, j in cells[:_MAX_LISTED_PROBLEMS].tolist()
        }
        raise _cells_error(problems, total=len(cells))
    return matrix


# -- body shapes -------------------------------------------------------------------------------


def _row_key(body: object) -> str:
    if not isinstance(body, dict):
        raise InvalidInput(f"body must be a JSON object; {_ONE_OF}")
    unknown = sorted(body.keys() - _ALLOWED_KEYS)
    if unknown:
        raise InvalidInput(f"unexpected key(s) {_name_list(_shortened(unknown))}; {_ONE_OF} (and optionally return_proba, explain)")
    present = [key for key in _ROW_KEYS if key in body]
    if len(present) != 1:
        raise InvalidInput(_ONE_OF)
    return present[0]


def _batch(rows: object, what: str, max_rows: int) -> list:
    if not isinstance(rows, list):
        raise InvalidInput(f"{what} must be a list of rows, got {_describe(rows)}")
    _check_count(len(rows), f"{what} is empty: send at least one row", max_rows)
    return rows


def _check_count(count: int, empty_detail: str, max_rows: int) -> None:
    if count == 0:
        raise InvalidInput(empty_detail)
    if count > max_rows:
        raise BatchTooLarge(f"batch has {count} rows; the limit is {max_rows}")


def _checked_split(split: object) -> dict:
    if not isinstance(split, dict) or split.keys() - _SPLIT_KEYS or not {"columns", "data"} <= split.keys():
        raise InvalidInput("dataframe_split must be an object with columns (feature names) and data (rows)")
    return split


def _rows_by_name(rows: list, names: list[str]) -> list[list]:
    expected = frozenset(names)
    ordered = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInput(f"row {i}: expected an object of feature values, got {_describe(row)}")
        if row.keys() != expected:
            missing = [name for name in names if name not in row]
            raise _names_error(f"row {i}", names, missing, [key for key in row if key not in expected], [])
        ordered.append([row[name] for name in names])
    return ordered


def _reorder(rows: list, columns: list[str], names: list[str], where: Callable[[int], str]) -> list[list]:
    """Rows given in ``columns`` order, rearranged into signature order."""
    known = frozenset(names)
    duplicated = sorted(name for name, count in Counter(columns).items() if count > 1)
    missing = [name for name in names if name not in columns]
    unexpected = [name for name in columns if name not in known]
    if duplicated or missing or unexpected:
        raise _names_error("columns", names, missing, unexpected, duplicated)
    position = {name: k for k, name in enumerate(columns)}
    order = [position[name] for name in names]
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            got = f"{len(row)}" if isinstance(row, list) else _describe(row)
            raise InvalidInput(f"{where(i)}: expected {len(columns)} values, one per column, got {got}")
    return [[row[k] for k in order] for row in rows]


# -- cells -------------------------------------------------------------------------------------


def _model_input(rows: list, signature: Signature, cells: _Cells, where: Callable[[int], str]) -> ModelInput:
    if signature.all_numeric:
        matrix = cells.fast_matrix(rows, len(signature.features))
        if matrix is not None:
            return matrix
    # The slow path checks every cell, so it is right even where the fast path was only cautious.
    converted = _convert_rows(rows, signature, cells, where)
    if signature.all_numeric:
        return np.array(converted, dtype=np.float64)
    return _frame(converted, signature)


def _finite_matrix(rows: list, width: int) -> np.ndarray | None:
    try:
        matrix = np.array(rows, dtype=np.float64)
    except (ValueError, OverflowError):
        return None
    if matrix.shape != (len(rows), width) or not np.isfinite(matrix).all():
        return None
    return matrix


def _json_matrix(rows: list, width: int) -> np.ndarray | None:
    # numpy would quietly turn True, "1.5" and null into numbers; only plain JSON numbers may pass.
    if set(map(type, rows)) <= _LIST and set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES:
        return _finite_matrix(rows, width)
    return None


def _convert_rows(rows: list, signature: Signature, cells: _Cells, where: Callable[[int], str]) -> list[list]:
    names = signature.names
    number = _or_missing(cells) if signature.missing else cells.number
    converters = [number if f.numeric else cells.category for f in signature.features]
    problems = {}
    converted = []
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise InvalidInput(f"{where(i)}: expected a list of {len(names)} values, got {_describe(row)}")
        if len(row) != len(names):
            raise InvalidInput(f"{where(i)}: {_count_message(names, len(row))}")
        values = []
        for name, convert, value in zip(names, converters, row):
            try:
                values.append(convert(value))
            except ValueError as error:
                problems[f"{where(i)}, feature {name}"] = str(error)
        converted.append(values)
    if problems:
        raise _cells_error(problems)
    return converted


def _or_missing(cells: _Cells) -> Callable[[object], float]:
    """``cells.number``, with the format's missing value read as NaN."""
    def number(value: object) -> float:
        return math.nan if value == cells.missing and type(value) is type(cells.missing) else cells.number(value)
    return number


def _frame(rows: list[list], signature: Signature) -> pd.DataFrame:
    import pandas as pd  # loaded already: only a model that takes named columns asks for a frame

    columns = {}
    for feature, values in zip(signature.features, zip(*rows)):
        # dtype=object keeps plain strings; pandas 3 would otherwise infer its own string dtype.
        columns[feature.name] = pd.Series(values, dtype=np.float64 if feature.numeric else object)
    return pd.DataFrame(columns)


def _json_number(value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"expected a number, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {_describe(value)}")
    return number


def _json_category(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {_describe(value)}")


def _csv_number(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {_describe_cell(text)}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {_describe_cell(text)}")
    return number


def _csv_category(text: str) -> str:
    if text == "":
        raise ValueError("expected a string, got an empty cell (missing values are not accepted)")
    return text


_JSON_CELLS = _Cells(_json_number, _json_category, _json_matrix, None)
_CSV_CELLS = _Cells(_csv_number, _csv_category, _finite_matrix, "")


# -- messages ----------------------------------------------------------------------------------


def _count_message(names: list[str], got: int) -> str:
    return f"expected {len(names)} features ({_name_list(names)}), got {got}"


def _name_list(names: list[str]) -> str:
    if len(names) <= 20:
        return ", ".join(names)
    return f"{', '.join(names[:10])}, ... {len(names) - 12} more ..., {', '.join(names[-2:])}"


def _shortened(names: list) -> list[str]:
    """The caller's names as a message quotes them: the first ``_MAX_LISTED_PROBLEMS``, each cut to
    40 characters, so a body of huge names makes a small error."""
    return [name if len(name) <= 40 else name[:37] + "..." for name in map(str, names[:_MAX_LISTED_PROBLEMS])]


def _names_error(where: str, names: list[str], missing: list, unexpected: list, duplicated: list) -> InvalidInput:
    found = {"missing": missing, "unexpected": _shortened(unexpected), "duplicated": _shortened(duplicated)}
    found = {kind: values for kind, values in found.items() if values}
    parts = [f"{kind}: {_name_list(values)}" for kind, values in found.items()]
    detail = f"{where}: {'; '.join(parts)}; expected: {_name_list(names)}"
    return InvalidInput(detail, errors={**found, "expected": names})


def _cells_error(problems: dict[str, str], total: int | None = None) -> InvalidInput:
    first = next(iter(problems.items()))
    detail = f"{first[0]}: {first[1]}"
    total = total or len(problems)
    if total > 1:
        detail += f" ({total} problems in all; see errors)"
    return InvalidInput(detail, errors=dict(islice(problems.items(), _MAX_LISTED_PROBLEMS)))


def _describe(value: object) -> str:
    """A JSON value as the caller wrote it, short enough for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe_cell(text: str) -> str:
    return "an empty cell" if text == "" else _describe(text)
