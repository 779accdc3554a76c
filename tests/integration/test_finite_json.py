"""JSON in and out holds finite numbers only (issue 40, item 9): a setting of NaN, Infinity or a
number past the largest double is refused with 422 naming it (labels: test_label_targets; predict
cells: test_predict_api, test_v2_bad_input); a figure that overflows is written as null, never as
Infinity."""
import json

import pytest
from flask import request
from werkzeug.exceptions import BadRequest

from tests.helpers import PROBE_ROW, scaled_sum, upload_ok

HEADER = "X-Request-ID"


@pytest.fixture
def app(build_app):
    return build_app(PREDICTION_LOG_SAMPLE=1.0)


@pytest.fixture
def served(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    upload_ok(client, ci, "m", scaled_sum(2))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200


def strict(text: str) -> object:
    def refuse(token):
        raise ValueError(f"{token} in the output")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_rollout_plan_with_a_non_finite_number_is_422_naming_the_setting(client, served, ci, token):
    body = ('{"canary": {"version": 2}, "plan": {"steps": [{"percent": 10, "min_requests": 50, "max_minutes": 60}], '
            '"gates": {"error_rate": {"max_increase": %s}}}}' % token)
    response = client.put("/models/m/aliases/production/rollout", data=body, content_type="application/json", headers=ci)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "max_increase" in response.get_json()["detail"]


def test_a_figure_that_overflows_is_written_as_null(app, client, served, ci):
    for request_id in ("big-1", "big-2"):
        assert client.post("/models/m/production/predict", json={"instances": [PROBE_ROW]},
                           headers={HEADER: request_id}).status_code == 200
    assert app.extensions["model_registry"].prediction_log.flush()
    labelled = client.post("/models/m/feedback", headers=ci, json={"items": [
        {"request_id": "big-1", "label": 1.7e308}, {"request_id": "big-2", "label": 1.7e308}]})
    assert labelled.get_json()["applied"] == 2, labelled.get_json()

    response = client.get("/models/m/versions/production/monitoring?window=1h")

    assert response.status_code == 200
    body = strict(response.get_data(as_text=True))
    assert body["quality"]["rows"] == 2 and body["quality"]["value"] is None


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_flasks_json_decoder_refuses_non_finite_tokens(app, token):
    with app.test_request_context("/", method="POST", data='{"x": [%s]}' % token, content_type="application/json"):
        with pytest.raises(BadRequest):
            request.get_json()
