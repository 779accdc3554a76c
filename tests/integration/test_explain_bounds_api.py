"""Over HTTP, explanations that end on time (issue 67, items 8 and 9), with hostile LightGBM files any ``ci`` token
can upload: chains thousands of levels deep over as many columns, the most work a file's size can ask of TreeSHAP.

- a version whose one row costs more than EXPLAIN_MAX_ROW_COST says ``explainable: false`` and why at upload, and
  ``explain`` on it is 422 at once (its predictions are served);
- a request whose rows cost more than EXPLAIN_MAX_COST is 413 at once, naming the rows that fit;
- ``X-Request-Timeout`` stops an explanation that started (503, Retry-After, problem+json), and without one
  EXPLAIN_TIMEOUT_SECONDS does; a longer header does not lengthen it; the next request is answered.
Anonymous callers and ``ci`` tokens alike.
"""
import io
import time

import pytest

from bench.hostile_explanations import lightgbm_chain, rows
from registry.inference.tree_shap import TreeExplainer
from tests.helpers import assert_problem

DEPTH = 2000  # 4,001 nodes, 1,000 points: 4,001,000 node-points a row (tens of ms of a core)
ROW_COST = (2 * DEPTH + 1) * (DEPTH // 2)
ANSWER = (DEPTH % 7) / 10  # the chain's last leaf, where rows(...) go
# 400 rows of the chain cost 1.6 billion node-points: 10 s of a core, whole. A request answered within WALL_SECONDS
# (generous: the machine is shared) stopped its explanation.
LONG_ROWS, WALL_SECONDS = 400, 6


def forbid_explaining(monkeypatch) -> None:
    """Fail the test if any row is explained from now on: a refusal comes before any work."""
    def explained(*args, **kwargs):
        raise AssertionError("an explanation ran")

    monkeypatch.setattr(TreeExplainer, "explain", explained)


@pytest.fixture
def never_explained(monkeypatch):
    forbid_explaining(monkeypatch)


def upload(client, headers, name: str, data: bytes) -> dict:
    response = client.post(f"/models/{name}/versions", data={"artifact": (io.BytesIO(data), "model.txt")},
                           headers=headers, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def explain(client, name: str, count: int, headers=None):
    started = time.monotonic()
    response = client.post(f"/models/{name}/1/predict", json={"instances": rows(DEPTH, count), "explain": True},
                           headers=headers or {})
    return response, time.monotonic() - started


@pytest.fixture
def anonymous():
    return {}


@pytest.mark.parametrize("caller", ["anonymous", "ci"])
def test_a_forest_of_chains_is_not_explainable_at_upload_and_explain_is_422_at_once(client, ci, caller,
                                                                                    never_explained):
    version = upload(client, ci, "chains", lightgbm_chain(DEPTH, 10))
    assert (version["explainable"], version["explain_row_cost"]) == (False, 10 * ROW_COST)
    assert "would cost 40,010,000 node-points" in version["explainable_reason"]
    assert "EXPLAIN_MAX_ROW_COST=20,000,000" in version["explainable_reason"]
    assert client.get("/models/chains/versions/1").get_json()["explainable"] is False
    refused, _ = explain(client, "chains", 10, ci if caller == "ci" else None)
    body = assert_problem(refused, 422, "version 1 of 'chains' is not explainable", "40,010,000 node-points",
                          "EXPLAIN_MAX_ROW_COST=20,000,000")
    assert body["errors"] == {"row_cost": 10 * ROW_COST, "max_row_cost": 20_000_000}
    predicted = client.post("/models/chains/1/predict", json={"instances": rows(DEPTH, 10)})
    assert predicted.status_code == 200 and predicted.get_json()["predictions"] == pytest.approx([10 * ANSWER] * 10)


@pytest.mark.parametrize("caller", ["anonymous", "ci"])
def test_a_request_costing_more_than_explain_max_cost_is_413_at_once_naming_the_rows_that_fit(client, ci, caller,
                                                                                              monkeypatch):
    version = upload(client, ci, "chain", lightgbm_chain(DEPTH))
    assert (version["explainable"], version["explainable_reason"], version["explain_row_cost"]) == (True, None,
                                                                                                     ROW_COST)
    with monkeypatch.context() as patched:
        forbid_explaining(patched)
        refused, _ = explain(client, "chain", 200, ci if caller == "ci" else None)
    assert_problem(refused, 413, "explaining 200 rows of version 1 of 'chain' would cost 800,200,000 node-points",
                   "EXPLAIN_MAX_COST", "explain at most 124 rows per request")
    answered, _ = explain(client, "chain", 2)
    assert answered.status_code == 200
    body = answered.get_json()
    assert [row["base_value"] + sum(row["values"].values()) for row in body["explanations"]] == pytest.approx([ANSWER] * 2)


def test_x_request_timeout_stops_an_explanation_that_started_with_503_and_the_next_request_is_answered(build_app, ci):
    client = build_app(EXPLAIN_MAX_COST=10**13).test_client()
    ci = _ci(client)
    upload(client, ci, "chain", lightgbm_chain(DEPTH))
    stopped, seconds = explain(client, "chain", LONG_ROWS, {"X-Request-Timeout": "1"})
    body = assert_problem(stopped, 503, f"the explanation of {LONG_ROWS} rows by version 1 of 'chain' was stopped when its "
                          "deadline passed")
    assert stopped.headers["Retry-After"] == "1" and body["reason"] == "explain_deadline"
    assert seconds < WALL_SECONDS, seconds
    answered, _ = explain(client, "chain", 1, {"X-Request-Timeout": "30"})
    assert answered.status_code == 200


@pytest.mark.parametrize("caller", ["anonymous", "ci"])
def test_without_a_header_explain_timeout_seconds_stops_it_and_a_longer_header_does_not_lengthen_it(build_app, caller):
    client = build_app(EXPLAIN_MAX_COST=10**13, EXPLAIN_TIMEOUT_SECONDS=0.5).test_client()
    ci = _ci(client)
    upload(client, ci, "chain", lightgbm_chain(DEPTH))
    for headers in ({}, {"X-Request-Timeout": "1000"}):
        stopped, seconds = explain(client, "chain", LONG_ROWS, {**headers, **(ci if caller == "ci" else {})})
        assert_problem(stopped, 503, "EXPLAIN_TIMEOUT_SECONDS")
        assert seconds < WALL_SECONDS, seconds


def _ci(client) -> dict:
    from tests.helpers import ADMIN_TOKEN

    created = client.post("/tokens", json={"name": "ci-bounds", "role": "ci"},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert created.status_code == 201, created.get_json()
    return {"Authorization": f"Bearer {created.get_json()['token']}"}
