"""A refused value is quoted by its first characters, never whole (issue 40, item 9: a 1 MB label
made a 1 MB error; so did a 100 KB key or column name in a predict body)."""
import pytest

from tests.helpers import scaled_sum, upload_ok

LONG = "k" * 100_000


@pytest.fixture
def served(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200


@pytest.mark.parametrize("body", [
    {"instances": [[1, 2, 3]], LONG: 1},
    {"dataframe_records": [{"x0": 1, "x1": 2, "x2": 3, LONG: 4}]},
    {"dataframe_split": {"columns": ["x0", "x1", "x2", LONG], "data": [[1, 2, 3, 4]]}},
    {"dataframe_split": {"columns": ["x0", "x1", LONG, LONG], "data": [[1, 2, 3, 4]]}},
    {"instances": [[1, 2, "y" * 1_000_000]]},
], ids=["top-level key", "record key", "split column", "duplicated column", "cell"])
def test_a_predict_error_quotes_a_long_name_or_value_short(client, served, body):
    response = client.post("/models/m/production/predict", json=body)
    assert response.status_code == 422
    assert len(response.get_data()) < 2_000, response.get_data()[:300]
