"""With no OTEL_* variable, tracing is off: nothing starts, no answer carries a ``traceparent`` (the caller's
is not echoed either), no error a ``trace_id``, and logged predictions have none."""
import uuid

import pytest

from api import domain
from registry import tracing
from tests.helpers import PROBE_ROW, scaled_sum, upload_ok

TRACEPARENT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
V2_ROW = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": PROBE_ROW}]}


@pytest.fixture
def app(build_app):
    """Every answer logged, with the settings of an environment that names no OTEL_* variable."""
    return build_app(PREDICTION_LOG_SAMPLE=1.0, OTEL_SDK_DISABLED="true")


@pytest.fixture
def name(client, ci):
    model = f"untraced-{uuid.uuid4().hex[:8]}"
    upload_ok(client, ci, model, scaled_sum(1.0))
    assert client.post(f"/models/{model}/versions/1/promote", json={}, headers=ci).status_code == 200
    return model


@pytest.mark.parametrize("path, body, query", [
    ("/models/{name}/production/predict", {"instances": [PROBE_ROW]}, ""),  # the fast path
    ("/models/{name}/production/predict", {"instances": [PROBE_ROW]}, "?explain=true"),  # Flask's view
    ("/v2/models/{name}/infer", V2_ROW, ""),
])
def test_no_answer_carries_a_traceparent(client, name, path, body, query):
    response = client.post(path.format(name=name) + query, json=body, headers=TRACEPARENT)

    assert response.status_code == 200, response.get_json()
    assert "traceparent" not in response.headers
    assert not tracing.enabled()


@pytest.mark.parametrize("path, body", [
    ("/models/{name}/production/predict", {"instances": [[1.0]]}),
    ("/models/{name}/production/predict", "not json"),
    ("/v2/models/{name}/infer", {"inputs": []}),
])
def test_no_error_carries_a_trace_id(client, name, path, body):
    response = client.post(path.format(name=name), json=body, headers=TRACEPARENT)

    assert response.status_code in (400, 422)
    assert "trace_id" not in response.get_json() and "traceparent" not in response.headers


def test_logged_predictions_have_no_trace_id(app, client, name, admin):
    assert client.post(f"/models/{name}/predict", json={"instances": [PROBE_ROW]}, headers=TRACEPARENT).status_code == 200
    with app.app_context():
        assert domain.prediction_log().flush()

    items = client.get(f"/models/{name}/predictions", headers=admin).get_json()["items"]

    assert [item["trace_id"] for item in items] == [None]
