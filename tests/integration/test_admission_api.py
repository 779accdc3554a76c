"""Admission on every prediction edge (the fast path, Flask's JSON and CSV, the Open Inference Protocol):
a model at its bound is 429, a full worker 503, a passed X-Request-Timeout 503 without computing, each
with Retry-After; refusals are counted on their own, never logged nor weighed against a rollout's arm;
shadow runs are shed before mirror runs, and come back once the worker is not busy."""
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from prometheus_client import REGISTRY

from api.deadlines import ARRIVED
from api.settings import settings_of
from tests.helpers import PROBE_ROW, assert_problem, scaled_sum, upload_ok

WAIT = 10  # seconds; a bound on waiting for the shadow runner, so a broken test fails instead of hanging
ROW = {"instances": [PROBE_ROW]}
EDGES = {
    "fast path": lambda client, name, **kw: client.post(f"/models/{name}/predict", json=ROW, **kw),
    "flask json": lambda client, name, **kw: client.post(f"/models/{name}/predict?proba=false", json=ROW, **kw),
    "csv": lambda client, name, **kw: client.post(f"/models/{name}/predict", data="x0,x1,x2\n1,1,1\n",
                                                  content_type="text/csv", **kw),
    "v2": lambda client, name, **kw: client.post(
        f"/v2/models/{name}/infer", json={"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64",
                                                      "data": PROBE_ROW}]}, **kw),
}


@pytest.fixture
def app(build_app):
    """Two predictions in flight per model, four per worker (shadows shed from 2, mirrors from 3); every
    answer logged."""
    return build_app(MAX_IN_FLIGHT_PER_MODEL=2, MAX_IN_FLIGHT=4, PREDICTION_LOG_SAMPLE=1.0)


@pytest.fixture
def served(app, client, ci):
    """Models a, b and c (k·sum, two versions each), version 1 on production, each just asked of the worker
    (so each model's bound holds: others are asked too)."""
    for name in ("a", "b", "c"):
        upload_ok(client, ci, name, scaled_sum(1.0))
        upload_ok(client, ci, name, scaled_sum(2.0))
        upload_ok(client, ci, name, scaled_sum(3.0))
        assert client.post(f"/models/{name}/versions/1/promote", json={}, headers=ci).status_code == 200
        with admission(app).admitted(name):
            pass


def admission(app):
    return app.extensions["model_registry"].runtime.admission


@contextmanager
def holding(app, *models: str) -> Iterator[None]:
    """A slot of each of ``models`` held (a model named twice: two) while the block runs."""
    with ExitStack() as held:
        for model in models:
            held.enter_context(admission(app).admitted(model))
        yield


def refused_total(model: str, reason: str) -> float:
    return REGISTRY.get_sample_value("registry_admission_refused_total", {"model": model, "reason": reason}) or 0.0


def detail(response, edge: str) -> str:
    return response.get_json()["error" if edge == "v2" else "detail"]


@pytest.mark.parametrize("edge", EDGES)
def test_a_model_at_its_bound_is_refused_429_with_retry_after_while_other_models_answer(app, client, served, edge):
    before = refused_total("a", "model_busy")
    with holding(app, "a", "a"):
        refused = EDGES[edge](client, "a")
        other = EDGES[edge](client, "b")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert "MAX_IN_FLIGHT_PER_MODEL=2" in detail(refused, edge) and refused.get_json()["reason"] == "model_busy"
    if edge != "v2":
        assert_problem(refused, 429, "retry after the Retry-After seconds")
    assert refused.headers["X-Request-ID"]
    assert other.status_code == 200
    assert refused_total("a", "model_busy") == before + 1
    assert EDGES[edge](client, "a").status_code == 200  # its slot is free again


def test_on_the_fast_path_even_the_request_that_may_wait_for_a_slot_is_refused_before_its_body_is_parsed(
        app, client, served):
    # ADMISSION_WAIT_MS: the one request of a model at its bound that may wait for a slot waits before its body
    # is parsed, and is refused there when none frees; a body that is not JSON is then 429, not the 400 that
    # parsing it would have said (a flood's waiter, refused every 10 ms, cost its worker a parse each time)
    assert settings_of(app).serving.admission_wait_seconds > 0
    broken = b'{"instances": [[1, 2'
    with holding(app, "a", "a"):
        refused = client.post("/models/a/predict", data=broken, content_type="application/json")
    assert refused.status_code == 429 and refused.get_json()["reason"] == "model_busy"
    assert_problem(client.post("/models/a/predict", data=broken, content_type="application/json"), 400,
                   "not valid JSON")  # a slot free: parsed, and refused for what it is


@pytest.mark.parametrize("edge", EDGES)
def test_a_full_worker_refuses_every_model_503_with_retry_after(app, client, served, edge):
    with holding(app, "a", "a", "b", "b"):
        refused = EDGES[edge](client, "c")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "MAX_IN_FLIGHT=4" in detail(refused, edge) and refused.get_json()["reason"] == "worker_busy"


@pytest.mark.parametrize("edge", EDGES)
def test_a_request_whose_deadline_passed_while_it_waited_is_503_and_nothing_is_computed(app, client, served, edge,
                                                                                          monkeypatch):
    servable = app.extensions["model_registry"].runtime.models.servable("a", "production")
    monkeypatch.setattr(servable.predictor, "predict", lambda rows: pytest.fail("computed past its deadline"))
    before = refused_total("a", "deadline")
    waited = {ARRIVED: time.monotonic() - 3.0}  # as if it had waited 3 s for a thread

    refused = EDGES[edge](client, "a", headers={"X-Request-Timeout": "2.5"}, environ_base=waited)

    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "X-Request-Timeout of 2.5 s passed before the prediction could start" in detail(refused, edge)
    assert refused_total("a", "deadline") == before + 1
    monkeypatch.undo()
    assert EDGES[edge](client, "a", headers={"X-Request-Timeout": "30"}, environ_base=waited).status_code == 200


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf", "1e3", "", "1,5"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_400_saying_what_to_send(client, served, edge, value):
    response = EDGES[edge](client, "a", headers={"X-Request-Timeout": value})
    assert response.status_code == 400
    assert "X-Request-Timeout must be a positive number of seconds" in detail(response, edge)


def test_a_refusal_is_not_logged_nor_counted_as_an_answer_of_any_version(app, client, served, analyst):
    with holding(app, "a", "a"):
        refused = client.post("/models/a/predict", json=ROW, headers={"X-Request-ID": "refused-1"})
    assert refused.status_code == 429
    assert client.post("/models/a/predict", json=ROW, headers={"X-Request-ID": "answered-1"}).status_code == 200
    counted = REGISTRY.get_sample_value("registry_predictions_total", {"model": "a", "version": "1", "status": "429"})
    assert counted is None
    app.extensions["model_registry"].prediction_log.flush()
    logged = client.get("/models/a/predictions", headers=analyst).get_json()["items"]
    assert "answered-1" in {item["request_id"] for item in logged}
    assert "refused-1" not in {item["request_id"] for item in logged}


def test_a_refused_name_no_worker_serves_is_counted_without_its_name(app, client, served):
    before = refused_total("", "deadline")
    response = client.post("/models/made-up/predict", json=ROW, headers={"X-Request-Timeout": "1"},
                           environ_base={ARRIVED: time.monotonic() - 5})
    assert response.status_code == 503
    assert refused_total("", "deadline") == before + 1 and refused_total("made-up", "deadline") == 0.0


def test_refusals_are_never_errors_of_a_canary_arm(app, client, served, ci):
    url = "/models/a/aliases/production/rollout"
    assert client.put(url, json={"canary": {"version": 2, "percent": 100}}, headers=ci).status_code == 200
    with holding(app, "a", "a"):
        assert {client.post("/models/a/predict", json=ROW).status_code for _ in range(5)} == {429}
    assert client.post("/models/a/predict", json=ROW).headers["X-Model-Route"] == "canary"
    app.extensions["model_registry"].runtime.flush_figures()
    figures = client.get(url).get_json()
    assert (figures["canary"]["requests"], figures["canary"]["errors"]) == (1, 0)
    assert (figures["primary"]["requests"], figures["primary"]["errors"]) == (0, 0)


def test_shadow_runs_are_shed_before_mirror_runs_while_busy_and_run_again_after(app, client, served, ci):
    url = "/models/a/aliases/production/rollout"
    plan = {"steps": [{"percent": 50, "min_requests": 1000, "max_minutes": 60}],
            "gates": {"agreement": {"max_mean_abs_diff": 10.0}}}
    started = client.put(url, json={"canary": {"version": 2}, "shadow": {"version": 3, "percent": 100}, "plan": plan},
                         headers=ci)
    assert started.status_code == 200, started.get_json()
    runtime = app.extensions["model_registry"].runtime
    shed = {kind: _shed(kind) for kind in ("shadow", "mirror")}

    def answer(hold: tuple[str, ...], route: str) -> None:
        """One request routed to ``route``, sent while ``hold``'s models each have a prediction in flight."""
        while True:
            response = client.post("/models/a/predict", json=ROW)
            assert response.status_code == 200
            if response.headers["X-Model-Route"] == route:
                break
            response.close()
        with holding(app, *hold):
            response.close()  # the runs after the answer are offered now
        assert runtime.shadows.wait_idle(WAIT)

    answer(("b", "c"), "canary")  # half full: the shadow run is shed, the mirror run is not
    assert (_shed("shadow"), _shed("mirror")) == (shed["shadow"] + 1, shed["mirror"])
    answer(("b", "b", "c"), "canary")  # every other slot taken: both are shed
    assert (_shed("shadow"), _shed("mirror")) == (shed["shadow"] + 2, shed["mirror"] + 1)
    answer((), "canary")  # idle: both run
    assert (_shed("shadow"), _shed("mirror")) == (shed["shadow"] + 2, shed["mirror"] + 1)
    runtime.flush_figures()
    shadow = client.get(url).get_json()["shadow"]
    assert (shadow["dropped"], shadow["compared"] >= 1) == (2, True)


def _shed(kind: str) -> float:
    return REGISTRY.get_sample_value("registry_shadow_shed_total", {"kind": kind}) or 0.0

