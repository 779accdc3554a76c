"""A drift reference too small to mean anything is not judged against (issue 47, item 4): below
DRIFT_MIN_REFERENCE_ROWS rows, ``drift`` stays null and ``drift_detail`` says why and what to send;
every other reason drift is null is said there too."""
import numpy as np
import pytest

from tests.helpers import scaled_sum, upload_ok

REFERENCE = "/models/m/versions/1/reference"
MONITORING = "/models/m/versions/1/monitoring"


@pytest.fixture
def app(build_app):
    return build_app(PREDICTION_LOG_SAMPLE=1.0, DRIFT_MIN_REFERENCE_ROWS=100)


@pytest.fixture
def served(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200


def serve(app, client, rows) -> None:
    for i in range(0, len(rows), 50):
        assert client.post("/models/m/production/predict", json={"instances": rows[i:i + 50]}).status_code == 200
    assert app.extensions["model_registry"].prediction_log.flush(), "the prediction log did not drain"


def test_three_reference_rows_judge_nothing_and_the_answer_says_to_send_at_least_the_minimum(app, client, served, ci):
    rng = np.random.default_rng(3)
    sent = client.put(REFERENCE, json={"source": "evaluation", "instances": rng.normal(size=(3, 3)).tolist()}, headers=ci)
    assert sent.status_code == 200 and sent.get_json()["rows"] == 3
    serve(app, client, (rng.normal(size=(150, 3)) + 1.5).tolist())  # shifted: any reference would flag it

    figures = client.get(MONITORING).get_json()

    assert figures["drift"] is None
    detail = figures["drift_detail"]
    assert "3 rows" in detail and "DRIFT_MIN_REFERENCE_ROWS" in detail and "100" in detail
    assert "PUT" in detail and REFERENCE in detail


def test_a_reference_of_the_minimum_is_judged_against_and_no_detail_is_given(app, client, served, ci):
    rng = np.random.default_rng(4)
    sent = client.put(REFERENCE, json={"source": "training", "instances": rng.normal(size=(100, 3)).tolist()}, headers=ci)
    assert sent.status_code == 200
    serve(app, client, (rng.normal(size=(150, 3)) + 1.5).tolist())

    figures = client.get(MONITORING).get_json()

    assert (figures["drift"]["reference"], figures["drift"]["reference_rows"]) == ("training", 100)
    assert figures["drift"]["features"]["x0"]["drifted"] and figures["drift_detail"] is None


def test_why_drift_is_null_is_said_while_the_window_or_the_first_traffic_is_too_short(app, client, served, ci):
    rng = np.random.default_rng(5)
    serve(app, client, rng.normal(size=(50, 3)).tolist())
    waiting = client.get(MONITORING).get_json()
    assert waiting["drift"] is None and "50 of the first 1000" in waiting["drift_detail"]
    assert REFERENCE in waiting["drift_detail"]

    client.put(REFERENCE, json={"source": "training", "instances": rng.normal(size=(500, 3)).tolist()}, headers=ci)
    short = client.get(MONITORING).get_json()
    assert short["drift"] is None and "50 answered rows" in short["drift_detail"] and "100" in short["drift_detail"]
