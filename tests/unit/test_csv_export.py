"""The CSV export neutralises formula cells as OWASP describes (issue 40, item 8): text that begins
with = + - @, a tab or a carriage return gets a leading quote; our own numbers stay numbers."""
import csv
import io
import json

import pytest

from api.csv_export import csv_table, neutral

HOSTILE = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", '=HYPERLINK("http://evil.example","x")',
           "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("text", HOSTILE)
def test_text_that_could_start_a_formula_gets_a_leading_quote(text):
    assert neutral(text) == "'" + text


@pytest.mark.parametrize("cell", ["plain", "", "'already", "a=b", 3, -1.5, None])
def test_anything_else_is_left_as_it_is(cell):
    assert neutral(cell) == cell


def test_a_table_of_hostile_cells_starts_no_cell_with_a_formula_and_keeps_numbers():
    items = [{"id": text, "n": -1.5, "j": text} for text in HOSTILE] + [{"id": "x", "n": 2, "j": -3}]
    text = csv_table(["id", "n", "j"], items, json_columns=["j"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["id", "n", "j"]
    for row, hostile in zip(rows[1:], HOSTILE):
        assert row == ["'" + hostile, "-1.5", json.dumps(hostile)]  # JSON text of a string starts with '"'
        assert row[0].startswith("'")
    assert rows[-1] == ["x", "2", "-3"]  # a number in a JSON column stays a number
    assert text.endswith('\r\n"x",2,-3\r\n')  # numbers unquoted, text quoted
