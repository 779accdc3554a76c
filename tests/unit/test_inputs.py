"""Prediction request bodies become the model's input, or an InvalidInput that names the problem."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from registry.artifacts.signature import Feature, Signature
from registry.errors import BatchTooLarge, InvalidInput
from registry.serving.inputs import rows_from_array, rows_from_csv, rows_from_json

NUMERIC = Signature(tuple(Feature(f"x{i}", "float64") for i in range(3)))
MIXED = Signature((Feature("area", "float64"), Feature("city", "object"), Feature("rooms", "int64")))
ONE_FEATURE = Signature((Feature("x0", "float64"),))
ROWS = [[1.0, 2.0, 3.0], [4.5, -5, 0]]
EXPECTED = np.array(ROWS, dtype=np.float64)


def from_json(body, signature=NUMERIC, max_rows=100):
    # Round-trip through json so the body is exactly what the API layer hands over.
    return rows_from_json(json.loads(json.dumps(body, allow_nan=True)), signature, max_rows)


@pytest.mark.parametrize(
    "body",
    [
        {"instances": ROWS},
        {"instances": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}, {"x2": 0, "x1": -5, "x0": 4.5}]},
        {"dataframe_split": {"columns": ["x0", "x1", "x2"], "data": ROWS}},
        {"dataframe_split": {"columns": ["x2", "x0", "x1"], "data": [[3.0, 1.0, 2.0], [0, 4.5, -5]]}},
        {"dataframe_split": {"columns": ["x0", "x1", "x2"], "data": ROWS, "index": [0, 1]}},
        {"dataframe_records": [{"x1": 2.0, "x0": 1.0, "x2": 3.0}, {"x0": 4.5, "x1": -5, "x2": 0}]},
        {"instances": ROWS, "return_proba": True},
    ],
    ids=["instances-lists", "instances-by-name", "split", "split-reordered", "split-index", "records", "proba"],
)
def test_every_json_format_yields_the_same_float_array(body):
    result = from_json(body)
    assert isinstance(result, np.ndarray)
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, EXPECTED)


def test_csv_with_reordered_header_yields_the_same_float_array():
    text = "x2,x0,x1\r\n3,1,2\r\n0,4.5,-5\r\n"
    np.testing.assert_array_equal(rows_from_csv(text, NUMERIC, 100), EXPECTED)


def test_csv_tolerates_a_byte_order_mark_blank_lines_and_spaces_in_the_header():
    text = "\ufeffx0, x1, x2\n\n1,2,3\n\n4.5, -5 ,0\n"
    np.testing.assert_array_equal(rows_from_csv(text, NUMERIC, 100), EXPECTED)


def test_mixed_signature_yields_a_dataframe_in_signature_order():
    body = {"dataframe_records": [{"city": "Paris", "rooms": 3, "area": 52.5}, {"rooms": 1, "area": 20, "city": "Lyon"}]}
    frame = from_json(body, MIXED)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["area", "city", "rooms"]
    assert list(frame.dtypes) == [np.float64, object, np.float64]
    assert frame["city"].tolist() == ["Paris", "Lyon"]
    assert frame["area"].tolist() == [52.5, 20.0]


def test_mixed_signature_gives_the_same_frame_from_json_lists_and_reordered_csv():
    from_lists = from_json({"instances": [[52.5, "Paris", 3]]}, MIXED)
    from_csv = rows_from_csv("city,rooms,area\nParis,3,52.5\n", MIXED, 100)
    pd.testing.assert_frame_equal(from_lists, from_csv)


def test_integer_categories_are_taken_as_their_decimal_text_like_a_csv_cell():
    frame = from_json({"instances": [[52.5, 75001, 3]]}, MIXED)
    assert frame["city"].tolist() == ["75001"]
    pd.testing.assert_frame_equal(frame, rows_from_csv("area,city,rooms\n52.5,75001,3\n", MIXED, 100))


def test_the_row_count_is_the_length_of_the_result():
    assert len(from_json({"instances": ROWS * 5})) == 10
    assert len(from_json({"instances": [[1.0, "a", 2]] * 3}, MIXED)) == 3


def test_a_batch_at_the_limit_is_accepted():
    assert from_json({"instances": [[1, 2, 3]] * 5}, max_rows=5).shape == (5, 3)


@pytest.mark.parametrize(
    "body, fragments",
    [
        ([[1, 2, 3]], ["body must be a JSON object", "instances"]),
        ({}, ["exactly one of instances, dataframe_split, dataframe_records"]),
        ({"return_proba": True}, ["exactly one of"]),
        ({"instances": ROWS, "dataframe_records": []}, ["exactly one of"]),
        ({"instances": ROWS, "inputs": ROWS}, ["unexpected key(s) inputs", "exactly one of"]),
        ({"instances": {"x0": 1}}, ["instances must be a list of rows, got an object"]),
        ({"instances": []}, ["instances is empty: send at least one row"]),
        ({"dataframe_records": []}, ["dataframe_records is empty"]),
        ({"instances": [[1.0, 2.0]]}, ["row 0: expected 3 features (x0, x1, x2), got 2"]),
        ({"instances": [[1, 2, 3], [1, 2, 3, 4]]}, ["row 1: expected 3 features (x0, x1, x2), got 4"]),
        ({"instances": [[1, 2, 3], 7]}, ["row 1: expected a list of 3 values, got 7"]),
        ({"instances": [[[1, 2, 3]]]}, ["row 0: expected 3 features", "got 1"]),
        ({"instances": [[1, 2, [3]]]}, ["row 0, feature x2: expected a number, got a list"]),
        ({"instances": [[1, 2, 3], [1, "abc", 3]]}, ["row 1, feature x1: expected a number, got 'abc'"]),
        ({"instances": [[1, "2.5", 3]]}, ["feature x1: expected a number, got '2.5'"]),
        ({"instances": [[1, True, 3]]}, ["row 0, feature x1: expected a number, got true"]),
        ({"instances": [[1, 2, None]]}, ["row 0, feature x2: expected a number, got null"]),
        ({"instances": [[1, 2, math.nan]]}, ["row 0, feature x2: expected a finite number, got NaN"]),
        ({"instances": [[math.inf, 2, 3]]}, ["feature x0: expected a finite number, got Infinity"]),
        ({"instances": [[1, -math.inf, 3]]}, ["feature x1: expected a finite number, got -Infinity"]),
        ({"instances": [[1, 2, 10**400]]}, ["feature x2: expected a finite number, got 1000"]),
        ({"instances": [{"x0": 1, "x1": 2, "x2": 3}, [1, 2, 3]]}, ["row 1: expected an object", "got a list"]),
        ({"instances": [{"x0": 1, "x1": 2, "foo": 3}]}, ["row 0: missing: x2; unexpected: foo; expected: x0, x1, x2"]),
        ({"dataframe_records": [[1, 2, 3]]}, ["row 0: expected an object of feature values, got a list"]),
        ({"dataframe_records": [{"x0": 1, "x1": 2}]}, ["row 0: missing: x2; expected: x0, x1, x2"]),
        ({"dataframe_split": [[1, 2, 3]]}, ["dataframe_split must be an object with columns"]),
        ({"dataframe_split": {"data": ROWS}}, ["dataframe_split must be an object with columns"]),
        ({"dataframe_split": {"columns": ["x0", "x1", "x2"], "data": ROWS, "x": 1}}, ["dataframe_split must be"]),
        ({"dataframe_split": {"columns": "x0,x1,x2", "data": ROWS}}, ["columns must be a list of feature names"]),
        ({"dataframe_split": {"columns": ["x0", "x1", "x2"], "data": []}}, ["dataframe_split.data is empty"]),
        ({"dataframe_split": {"columns": ["x0", "x1", "y"], "data": ROWS}}, ["columns: missing: x2; unexpected: y"]),
        ({"dataframe_split": {"columns": ["x0", "x1", "x2", "x1"], "data": ROWS}}, ["duplicated: x1"]),
        ({"dataframe_split": {"columns": ["x1", "x0", "x2"], "data": [[1, 2]]}}, ["row 0: expected 3 values, one per column, got 2"]),
        ({"dataframe_split": {"columns": ["x0", "x1", "x2"], "data": [[1, 2]]}}, ["row 0: expected 3 features"]),
    ],
)
def test_bad_json_bodies_are_refused_with_a_detail_naming_the_problem(body, fragments):
    with pytest.raises(InvalidInput) as raised:
        from_json(body)
    for fragment in fragments:
        assert fragment in raised.value.detail


@pytest.mark.parametrize(
    "row, fragment",
    [
        ([52.5, None, 3], "feature city: expected a string, got null"),
        ([52.5, 1.5, 3], "feature city: expected a string, got 1.5"),
        ([52.5, False, 3], "feature city: expected a string, got false"),
        ([52.5, ["Paris"], 3], "feature city: expected a string, got a list"),
        (["52.5", "Paris", 3], "feature area: expected a number, got '52.5'"),
        ([52.5, "Paris", math.nan], "feature rooms: expected a finite number, got NaN"),
    ],
)
def test_bad_cells_of_a_mixed_signature_are_refused(row, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        from_json({"instances": [row]}, MIXED)


def test_a_single_feature_model_refuses_rows_nested_too_deep():
    with pytest.raises(InvalidInput, match="row 0, feature x0: expected a number, got a list"):
        from_json({"instances": [[[1.0]]]}, ONE_FEATURE)


def test_every_bad_cell_is_counted_and_listed_in_errors_up_to_a_limit():
    with pytest.raises(InvalidInput) as raised:
        from_json({"instances": [["a", "b", "c"]] * 10})
    error = raised.value
    assert error.detail.startswith("row 0, feature x0: expected a number, got 'a'")
    assert "30 problems in all" in error.detail
    assert len(error.errors) == 20
    assert error.errors["row 1, feature x2"] == "expected a number, got 'c'"


def test_wrong_names_are_listed_in_errors():
    with pytest.raises(InvalidInput) as raised:
        from_json({"instances": [{"x0": 1, "x1": 2, "foo": 3}]})
    assert raised.value.errors == {"missing": ["x2"], "unexpected": ["foo"], "expected": ["x0", "x1", "x2"]}


def test_hundreds_of_expected_names_are_abbreviated():
    wide = Signature(tuple(Feature(f"f{i}", "float64") for i in range(300)))
    with pytest.raises(InvalidInput) as raised:
        from_json({"instances": [[1.0] * 299]}, wide)
    detail = raised.value.detail
    assert detail.startswith("row 0: expected 300 features (f0, f1,")
    assert "288 more" in detail and detail.endswith("f298, f299), got 299")
    assert len(detail) < 200


def test_long_strings_are_shortened_in_messages():
    with pytest.raises(InvalidInput) as raised:
        from_json({"instances": [[1, "z" * 10_000, 3]]})
    assert len(raised.value.detail) < 120


@pytest.mark.parametrize(
    "body",
    [{"instances": [[1, 2, 3]] * 6}, {"dataframe_records": [{"x0": 1, "x1": 2, "x2": 3}] * 6},
     {"dataframe_split": {"columns": ["x0", "x1", "x2"], "data": [[1, 2, 3]] * 6}}],
)
def test_a_batch_over_the_limit_is_too_large(body):
    with pytest.raises(BatchTooLarge, match="batch has 6 rows; the limit is 5"):
        from_json(body, max_rows=5)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "the CSV body is empty"),
        ("\n\n", "the CSV body is empty"),
        ("x0,x1,x2\n", "the CSV has a header but no rows: send at least one row"),
        ("x0,x1,x2\n\n", "the CSV has a header but no rows"),
        ("x0,x1\n1,2\n", "columns: missing: x2; expected: x0, x1, x2"),
        ("x0,x1,x2,foo\n1,2,3,4\n", "columns: unexpected: foo"),
        ("x0,x1,x1,x2\n1,2,2,3\n", "columns: duplicated: x1"),
        ("x0,x1,x2\n1,2,3\n1,abc,3\n", "line 3, feature x1: expected a number, got 'abc'"),
        ("x0,x1,x2\n1,,3\n", "line 2, feature x1: expected a number, got an empty cell"),
        ("x0,x1,x2\n1,nan,3\n", "line 2, feature x1: expected a finite number, got 'nan'"),
        ("x0,x1,x2\n1,2,-inf\n", "line 2, feature x2: expected a finite number, got '-inf'"),
        ("x0,x1,x2\n1,2,3\n1,2\n", "line 3: expected 3 features (x0, x1, x2), got 2"),
        ("x2,x1,x0\n1,2,3\n1,2\n", "line 3: expected 3 values, one per column, got 2"),
        ("x0,x1,x2\n\n1,2,3\n\n1,2,x\n", "line 5, feature x2"),
        ('x0,x1,x2\n1,2,"3\n', "the CSV body could not be parsed at line 2: unexpected end of data"),
        ('x0,x1,x2\n1,"2"x,3\n', "the CSV body could not be parsed at line 2"),
    ],
)
def test_bad_csv_bodies_are_refused_with_a_detail_naming_the_problem(text, fragment):
    with pytest.raises(InvalidInput) as raised:
        rows_from_csv(text, NUMERIC, 100)
    assert fragment in raised.value.detail


def test_an_empty_csv_cell_is_refused_for_a_categorical_feature():
    with pytest.raises(InvalidInput, match="line 2, feature city: expected a string, got an empty cell"):
        rows_from_csv("area,city,rooms\n52.5,,3\n", MIXED, 100)


def test_a_csv_batch_over_the_limit_is_too_large():
    with pytest.raises(BatchTooLarge, match="batch has 3 rows; the limit is 2"):
        rows_from_csv("x0,x1,x2\n1,2,3\n1,2,3\n1,2,3\n", NUMERIC, 2)


# -- typed arrays (the Open Inference Protocol's numeric tensors) --------------------------------


def test_a_finite_array_in_signature_order_is_the_models_input():
    assert rows_from_array(EXPECTED, NUMERIC, 100) is EXPECTED


@pytest.mark.parametrize(
    "matrix, max_rows, error, fragment",
    [
        (np.ones((0, 3)), 100, InvalidInput, "the batch is empty"),
        (np.ones((2, 2)), 100, InvalidInput, "expected 3 features (x0, x1, x2), got 2"),
        (np.ones(3), 100, InvalidInput, "expected 3 features"),
        (np.ones((6, 3)), 5, BatchTooLarge, "batch has 6 rows; the limit is 5"),
    ],
    ids=["empty", "narrow", "one-dimensional", "over-the-limit"],
)
def test_arrays_of_the_wrong_size_are_refused(matrix, max_rows, error, fragment):
    with pytest.raises(error) as raised:
        rows_from_array(matrix, NUMERIC, max_rows)
    assert fragment in raised.value.detail


def test_finite_numbers_whose_sum_overflows_are_taken_and_a_lone_infinity_among_them_is_not():
    # the array is first summed: a non-finite sum sends it to the cell-by-cell check, which alone decides
    matrix = np.full((4, 3), 1e308)
    assert rows_from_array(matrix, NUMERIC, 100) is matrix
    matrix[2, 1] = -np.inf
    with pytest.raises(InvalidInput) as raised:
        rows_from_array(matrix, NUMERIC, 100)
    assert raised.value.detail == "row 2, feature x1: expected a finite number, got -Infinity"


def test_every_non_finite_cell_of_an_array_is_counted_and_the_first_named():
    matrix = np.ones((30, 3))
    matrix[1, 2], matrix[4, 0] = np.nan, -np.inf
    matrix[5:, 1] = np.inf
    with pytest.raises(InvalidInput) as raised:
        rows_from_array(matrix, NUMERIC, 100)
    assert raised.value.detail == "row 1, feature x2: expected a finite number, got NaN (27 problems in all; see errors)"
    assert raised.value.errors["row 4, feature x0"] == "expected a finite number, got -Infinity"
    assert len(raised.value.errors) == 20
