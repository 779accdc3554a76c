"""The CSV export neutralises formula cells as OWASP describes (issue 40, item 8): text that begins
with = + - @, a tab or a carriage return gets a leading quote; our own numbers stay numbers, and so does
text that is a plain number. Batch scoring's CSV output follows the same one rule (issue 67, item 16)."""
import csv
import io
import json

import pytest

import pandas as pd

from api.csv_export import csv_table
from registry.csv_cells import neutral
from registry_client.batch import neutral_frame

HOSTILE = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", '=HYPERLINK("http://evil.example","x")',
           "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("text", HOSTILE)
def test_text_that_could_start_a_formula_gets_a_leading_quote(text):
    assert neutral(text) == "'" + text


@pytest.mark.parametrize("text", ["-inf", "-nan", "-1.5e", "- 1", "+", "-", "-1,5", "-0x1F", "--1"])
def test_text_that_only_starts_like_a_number_gets_a_leading_quote_too(text):
    assert neutral(text) == "'" + text


@pytest.mark.parametrize("cell", ["plain", "", "'already", "a=b", 3, -1.5, None,
                                  "-1.5", "+2", "-0", "-.5", "+1e-3", "-12.E+4"])  # text that is a plain number
def test_anything_else_is_left_as_it_is(cell):
    assert neutral(cell) == cell


def test_batch_scoring_writes_csv_through_the_same_rule_leaving_numbers_and_their_types_alone():
    frame = pd.DataFrame({"id": HOSTILE, "x": ["-1.5"] * len(HOSTILE), "n": [-1.5] * len(HOSTILE),
                          "label": pd.Series(["=bad", "ok"] * (len(HOSTILE) // 2), dtype="string")})

    written = neutral_frame(frame)

    assert written["id"].tolist() == [neutral(text) for text in HOSTILE] == ["'" + text for text in HOSTILE]
    assert written["x"].tolist() == ["-1.5"] * len(HOSTILE) and written["n"].tolist() == [-1.5] * len(HOSTILE)
    assert written["label"].tolist() == ["'=bad", "ok"] * (len(HOSTILE) // 2)
    assert written.dtypes.to_dict() == frame.dtypes.to_dict()
    assert frame["id"].tolist() == HOSTILE  # the caller's frame is not changed


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
