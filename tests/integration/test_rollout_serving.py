"""Rollouts across processes: two app instances on one database play two workers.

Worker A is the ``app`` fixture, worker B a second app on the same database and artifact root.
``server.refresh()`` plays one watcher tick and ``runtime.flush_figures()`` one figures flush.
"""
import io
import threading
import time

import numpy as np
import pytest
from prometheus_client import REGISTRY
from sklearn.linear_model import LogisticRegression

from api.settings import settings_of
from tests.helpers import PROBE_ROW, WrappedLoader, classification_data, scaled_sum, upload_ok

WAIT = 10  # seconds; only a bound on waiting for an Event, so a broken test fails instead of hanging
URL = "/models/m/aliases/production/rollout"


@pytest.fixture
def model(client, ci):
    """Model ``m`` with versions 1..3 (k·sum); production on 1."""
    shas = {}
    for factor in (1, 2, 3):
        version = upload_ok(client, ci, "m", scaled_sum(factor))
        shas[version] = client.get(f"/models/m/versions/{version}").get_json()["sha256"]
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    return shas


@pytest.fixture
def b(app, build_app, model):
    """Worker B: a second app on the same database and artifact root."""
    return build_app(artifact_root=settings_of(app).storage.artifact_root).test_client()


def runtime_of(app):
    return app.extensions["model_registry"].runtime


def server_of(app):
    return runtime_of(app).models


def answer(client, key=None, ref="production"):
    headers = {"X-User-Id": key} if key is not None else {}
    response = client.post(f"/models/m/{ref}/predict", json={"instances": [PROBE_ROW]}, headers=headers)
    response.close()  # as a WSGI server does once the answer is sent: the shadow is queued now
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["predictions"] == [pytest.approx(3.0 * body["version"])]  # its own answer, never the shadow's
    return body["version"], response.headers.get("X-Model-Route")


def test_figures_of_two_workers_are_summed_through_the_database(app, client, ci, model, b):
    b_app = b.application
    started = client.put(URL, json={"canary": {"version": 2, "percent": 40}, "shadow": {"version": 3, "percent": 100},
                                    "sticky_header": "X-User-Id"}, headers=ci)
    assert started.status_code == 200
    served = [answer(client, key=f"a{i}") for i in range(30)] + [answer(b, key=f"b{i}") for i in range(20)]
    for worker in (app, b_app):
        assert runtime_of(worker).shadows.wait_idle(WAIT)
        runtime_of(worker).flush_figures()

    figures = client.get(URL).get_json()
    on_canary = sum(version == 2 for version, _ in served)
    assert figures["primary"]["requests"] == 50 - on_canary and figures["canary"]["requests"] == on_canary
    assert 0 < on_canary < 50
    assert figures["primary"]["errors"] == figures["canary"]["errors"] == 0
    assert figures["primary"]["p50_ms"] > 0 and figures["canary"]["p99_ms"] >= figures["canary"]["p50_ms"]
    shadow = figures["shadow"]
    assert (shadow["compared"], shadow["dropped"], shadow["errors"]) == (50, 0, 0)
    # v3 answers 9 where v1 answered 3 and v2 answered 6
    assert shadow["mean_abs_diff"] == pytest.approx((6 * (50 - on_canary) + 3 * on_canary) / 50)
    assert shadow["max_abs_diff"] == pytest.approx(6.0)


def test_flushing_again_replaces_a_workers_totals_rather_than_adding_them(client, ci, model, app):
    client.put(URL, json={"canary": {"version": 2, "percent": 50}}, headers=ci)
    for i in range(10):
        answer(client, key=f"k{i}")
    runtime_of(app).flush_figures()
    runtime_of(app).flush_figures()
    answer(client, key="k-last")
    runtime_of(app).flush_figures()
    figures = client.get(URL).get_json()
    assert figures["primary"]["requests"] + figures["canary"]["requests"] == 11


def test_a_shadow_classifier_is_compared_by_label_agreement(client, ci, app):
    X, y = classification_data()
    upload_ok(client, ci, "c", LogisticRegression().fit(X, y))
    upload_ok(client, ci, "c", LogisticRegression(C=0.5).fit(X, y))
    assert client.post("/models/c/versions/1/promote", json={}, headers=ci).status_code == 200
    url = "/models/c/aliases/production/rollout"
    assert client.put(url, json={"shadow": {"version": 2, "percent": 100}}, headers=ci).status_code == 200
    for row in ([3.0, 3.0, 0.0, 0.0], [-3.0, -3.0, 0.0, 0.0]):
        response = client.post("/models/c/predict", json={"instances": [row, row]})
        response.close()
        assert response.status_code == 200 and response.get_json()["version"] == 1
    assert runtime_of(app).shadows.wait_idle(WAIT)
    runtime_of(app).flush_figures()
    shadow = client.get(url).get_json()["shadow"]
    assert (shadow["compared"], shadow["agreement"]) == (2, 1.0)
    assert "mean_abs_diff" not in shadow


def test_another_worker_follows_a_rollout_at_its_refresh_and_the_changing_worker_at_once(client, ci, model, b):
    b_server = server_of(b.application)
    assert answer(b) == (1, "primary")
    client.put(URL, json={"canary": {"version": 2, "percent": 100}}, headers=ci)
    assert answer(client) == (2, "canary")
    assert answer(b) == (1, "primary")
    b_server.refresh()
    assert answer(b) == (2, "canary")

    assert client.delete(URL, headers=ci).status_code == 200
    assert answer(client) == (1, "primary")
    assert answer(b) == (2, "canary")
    b_server.refresh()
    assert answer(b) == (1, "primary")


def test_a_worker_loads_the_canary_before_routing_to_it_and_answers_meanwhile(client, ci, model, b, monkeypatch):
    b_server = server_of(b.application)
    assert answer(b) == (1, "primary")
    client.put(URL, json={"canary": {"version": 2, "percent": 100}}, headers=ci)
    entered, release = threading.Event(), threading.Event()

    def gate(info):
        if info.sha256 == model[2]:
            entered.set()
            assert release.wait(WAIT)

    monkeypatch.setattr(b_server.loads, "loader", WrappedLoader(b_server.loads.loader, gate))
    refresher = threading.Thread(target=b_server.refresh)
    refresher.start()
    assert entered.wait(WAIT)
    assert answer(b) == (1, "primary")  # the canary is still loading: no request waits for it
    release.set()
    refresher.join(WAIT)
    assert not refresher.is_alive()
    assert answer(b) == (2, "canary")


def test_a_worker_that_first_sees_an_alias_serves_its_running_rollout(client, ci, model, b):
    client.put(URL, json={"canary": {"version": 2, "percent": 100}}, headers=ci)
    assert answer(b) == (2, "canary")


def test_routes_and_shadows_are_counted_per_version_and_role_in_metrics(client, ci, model, app):
    client.put(URL, json={"canary": {"version": 2, "percent": 100}, "shadow": {"version": 3, "percent": 100}}, headers=ci)
    before = REGISTRY.get_sample_value(
        "registry_routed_predictions_total",
        {"model": "m", "alias": "production", "route": "canary", "version": "2", "status": "200"},
    ) or 0
    answer(client)
    assert runtime_of(app).shadows.wait_idle(WAIT)
    text = client.get("/metrics").get_data(as_text=True)
    assert REGISTRY.get_sample_value(
        "registry_routed_predictions_total",
        {"model": "m", "alias": "production", "route": "canary", "version": "2", "status": "200"},
    ) == before + 1
    assert 'registry_shadow_runs_total{alias="production",model="m",outcome="compared",version="3"}' in text
    assert "registry_routed_predict_seconds_bucket" in text and "registry_shadow_abs_diff_bucket" in text


def test_a_worker_that_cannot_load_the_canary_keeps_answering_and_tries_again(client, ci, model, b, monkeypatch):
    assert answer(b) == (1, "primary")
    client.put(URL, json={"canary": {"version": 2, "percent": 100}}, headers=ci)
    b_server = server_of(b.application)
    real = b_server.loads.loader

    def failing(info):
        if info.sha256 == model[2]:
            raise OSError("the artifact store is unreachable")

    monkeypatch.setattr(b_server.loads, "loader", WrappedLoader(real, failing))
    b_server.refresh()
    assert answer(b) == (1, "primary")
    monkeypatch.setattr(b_server.loads, "loader", real)
    deadline = time.monotonic() + 5  # the failed load is retried once its (first, short) backoff has passed
    while answer(b) != (2, "canary") and time.monotonic() < deadline:
        server_of(b.application).refresh()
    assert answer(b) == (2, "canary")


def test_boosted_files_roll_out_beside_a_forest_exactly_and_the_canary_promotes(app, client, ci):
    """A forest serves production; an XGBoost JSON file is its canary and a LightGBM text file its shadow
    (issue 42): every answer is its own version's, bit for bit as its library answers, the figures count
    both arms and compare the shadow by label agreement, and promoting the canary serves it everywhere."""
    import lightgbm
    import xgboost
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(X, y)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 4, "base_score": 0.3},
                            xgboost.DMatrix(X, y), 25)
    lgbm = lightgbm.train({"objective": "binary", "num_leaves": 15, "verbose": -1, "min_data_in_leaf": 5},
                          lightgbm.Dataset(X, y, feature_name=[f"x{i}" for i in range(4)]), 25)
    upload_ok(client, ci, "b", forest)
    for filename, data in (("model.json", booster.save_raw("json")), ("model.txt", lgbm.model_to_string().encode())):
        created = client.post("/models/b/versions", data={"artifact": (io.BytesIO(bytes(data)), filename)},
                              headers=ci, content_type="multipart/form-data")
        assert created.status_code == 201, created.get_json()
    assert client.post("/models/b/versions/1/promote", json={}, headers=ci).status_code == 200
    url = "/models/b/aliases/production/rollout"
    started = client.put(url, json={"canary": {"version": 2, "percent": 50}, "shadow": {"version": 3, "percent": 100},
                                    "sticky_header": "X-User-Id"}, headers=ci)
    assert started.status_code == 200, started.get_json()
    rows = np.round(rng.normal(size=(40, 4)), 6)
    expected = {1: forest.predict_proba(rows)[:, 1], 2: booster.predict(xgboost.DMatrix(rows))}

    served = []
    for i, row in enumerate(rows):
        response = client.post("/models/b/production/predict", json={"instances": [row.tolist()], "return_proba": True},
                               headers={"X-User-Id": f"user-{i}"})
        response.close()
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        served.append(body["version"])
        assert body["probabilities"][0][1] == float(np.float64(expected[body["version"]][i])), (i, body)
    assert runtime_of(app).shadows.wait_idle(WAIT)
    runtime_of(app).flush_figures()

    figures = client.get(url).get_json()
    assert set(served) == {1, 2}
    assert (figures["canary"]["requests"], figures["canary"]["errors"]) == (served.count(2), 0)
    assert figures["shadow"]["compared"] == 40 and 0.5 < figures["shadow"]["agreement"] <= 1.0
    assert client.post(f"{url}/promote", json={}, headers=ci).status_code == 200
    after = client.post("/models/b/production/predict", json={"instances": rows[:5].tolist()}).get_json()
    assert after["version"] == 2 and after["predictions"] == (expected[2][:5] > 0.5).astype(int).tolist()
