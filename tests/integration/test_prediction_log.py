"""The prediction log: sampled answers and every error, written off the request path, read back by
any token, a page at a time, as JSON or CSV; each model's share set by ci or admin."""
import csv
import io
import math
import statistics
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select

from api.settings import settings_of
from registry.db import write_transaction
from registry.monitoring.feedback import MAX_ITEMS as MAX_FEEDBACK_ITEMS
from registry.monitoring.tables import LoggedPrediction
from registry.tables import utcnow
from tests.helpers import PROBE_ROW, assert_problem, classification_data, scaled_sum, upload_ok

BODY = {"instances": [PROBE_ROW, [2.0, 0.5, -1.0]]}


@pytest.fixture
def app(build_app):
    return build_app(PREDICTION_LOG_SAMPLE=1.0)


@pytest.fixture
def served(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    upload_ok(client, ci, "m", scaled_sum(2))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    return "m"


def written(app) -> None:
    assert app.extensions["model_registry"].prediction_log.flush(), "the prediction log did not drain"


def logged(client, headers, query="", **kwargs):
    response = client.get(f"/models/m/predictions{query}", headers=headers, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def test_answers_are_logged_with_their_request_id_rows_outputs_and_route(app, client, served, ci, analyst):
    answers = [client.post("/models/m/production/predict", json=BODY, headers={"X-Request-ID": f"r-{i}"}) for i in range(3)]
    pinned = client.post("/models/m/2/predict", json=BODY, headers={"X-Request-ID": "pinned"})
    written(app)

    items = logged(client, analyst).get_json()["items"]
    assert [item["request_id"] for item in items] == ["pinned", "r-2", "r-1", "r-0"]  # newest first
    newest, first = items[0], items[-1]
    assert (newest["version"], newest["alias"], newest["route"]) == (2, None, None)
    assert newest["outputs"] == {"predictions": pinned.get_json()["predictions"]}
    assert (first["version"], first["alias"], first["route"], first["status"]) == (1, "production", "primary", 200)
    assert first["inputs"] == BODY["instances"]
    assert first["outputs"]["predictions"] == answers[0].get_json()["predictions"]
    assert first["latency_ms"] > 0 and first["label"] is None
    assert datetime.fromisoformat(first["at"]) <= datetime.now(timezone.utc)


def test_errors_are_logged_whatever_the_share_and_answers_only_by_their_share(app, client, served, ci, admin):
    assert client.patch("/models/m", json={"prediction_log": {"sample": 0}}, headers=ci).status_code == 200
    prediction_log = app.extensions["model_registry"].prediction_log
    prediction_log.refresh()  # as the writer does every couple of seconds
    assert client.post("/models/m/production/predict", json=BODY).status_code == 200
    refused = client.post("/models/m/production/predict", json={"instances": [["a", "b", "c"]]},
                          headers={"X-Request-ID": "bad-rows"})
    assert refused.status_code == 422
    written(app)

    (item,) = logged(client, admin).get_json()["items"]
    assert (item["request_id"], item["status"], item["inputs"]) == ("bad-rows", 422, None)
    assert "expected a number" in item["outputs"]["detail"]


def test_each_model_sets_its_share_and_shows_it(client, served, ci, admin):
    assert client.get("/models/m").get_json()["prediction_log"] == {"sample": 1.0, "max_mb": None, "explain": 0.0}  # PREDICTION_LOG_SAMPLE here
    changed = client.patch("/models/m", json={"prediction_log": {"sample": 0.25}}, headers=ci)
    assert changed.status_code == 200 and changed.get_json()["prediction_log"] == {"sample": 0.25, "max_mb": None, "explain": 0.0}
    reset = client.patch("/models/m", json={"prediction_log": {"sample": None}}, headers=admin)
    assert reset.get_json()["prediction_log"] == {"sample": 1.0, "max_mb": None, "explain": 0.0}


@pytest.mark.parametrize("body", [{"prediction_log": {"sample": 1.5}}, {"prediction_log": {"sample": -0.1}},
                                  {"prediction_log": {}}, {"prediction_log": {"sample": "all"}}])
def test_a_share_outside_0_to_1_is_refused(client, served, ci, body):
    assert_problem(client.patch("/models/m", json=body, headers=ci), 422, "sample")


def test_ci_may_set_the_share_but_not_the_description(client, served, ci):
    response = client.patch("/models/m", json={"description": "x", "prediction_log": {"sample": 0.5}}, headers=ci)
    assert_problem(response, 403, "this needs 'admin'")
    assert client.get("/models/m").get_json()["prediction_log"] == {"sample": 1.0, "max_mb": None, "explain": 0.0}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
def test_the_log_needs_a_token_even_where_reads_are_open(client, served, headers):
    assert client.get("/models/m").status_code == 200  # reads are open here
    assert_problem(client.get("/models/m/predictions", headers=headers), 401)


def test_pages_follow_the_cursor_and_filters_narrow_them(app, client, served, ci, analyst):
    for i in range(5):
        client.post("/models/m/production/predict", json=BODY, headers={"X-Request-ID": f"p-{i}"})
    client.post("/models/m/2/predict", json=BODY, headers={"X-Request-ID": "v2"})
    written(app)

    first = logged(client, analyst, "?limit=2&version=1").get_json()
    second = logged(client, analyst, f"?limit=2&version=1&cursor={first['next_cursor']}").get_json()
    third = logged(client, analyst, f"?limit=2&version=1&cursor={second['next_cursor']}").get_json()
    ids = [item["request_id"] for page in (first, second, third) for item in page["items"]]
    assert ids == ["p-4", "p-3", "p-2", "p-1", "p-0"] and third["next_cursor"] is None
    later = (datetime.now(timezone.utc) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert logged(client, analyst, f"?since={later}").get_json() == {"items": [], "next_cursor": None,
                                                                         "exported_to": None}
    assert len(logged(client, analyst, f"?until={later}").get_json()["items"]) == 6


def test_the_log_comes_as_csv_for_notebooks(app, client, served, analyst):
    client.post("/models/m/production/predict", json=BODY, headers={"X-Request-ID": "csv-1"})
    written(app)

    response = logged(client, {**analyst, "Accept": "text/csv"})
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["request_id"] for row in rows] == ["csv-1"]
    assert rows[0]["inputs"] == "[[1.0, 1.0, 1.0], [2.0, 0.5, -1.0]]" and rows[0]["status"] == "200"


@pytest.mark.parametrize("query", ["?limit=0", "?limit=1001", "?since=yesterday", "?cursor=-1", "?cursor=9223372036854775808",
                                   "?version=0"])
def test_bad_query_values_are_422(client, served, ci, query, analyst):
    assert_problem(client.get(f"/models/m/predictions{query}", headers=analyst), 422)


def test_an_unknown_model_has_no_log(client, ci, analyst):
    assert_problem(client.get("/models/nope/predictions", headers=analyst), 404)


def test_what_is_older_than_the_retention_is_pruned(app, client, served, ci, analyst):
    for i in range(3):
        client.post("/models/m/production/predict", json=BODY, headers={"X-Request-ID": f"k-{i}"})
    written(app)
    prediction_log = app.extensions["model_registry"].prediction_log
    with app.app_context(), write_transaction() as session:
        oldest = session.execute(select(LoggedPrediction).order_by(LoggedPrediction.id).limit(2)).scalars().all()
        for row in oldest:
            row.at = utcnow() - timedelta(seconds=settings_of(app).prediction_log.retention_seconds, minutes=1)

    assert prediction_log.prune() == 2
    assert [item["request_id"] for item in logged(client, analyst).get_json()["items"]] == ["k-2"]


@pytest.fixture
def classifier(client, ci):
    X, y = classification_data(n_features=3)
    upload_ok(client, ci, "c", LogisticRegression().fit(X, y))
    assert client.post("/models/c/versions/1/promote", json={}, headers=ci).status_code == 200
    return "c"


def feedback_token(client, admin) -> dict:
    created = client.post("/tokens", json={"name": "shop-app", "role": "feedback"}, headers=admin)
    assert created.status_code == 201, created.get_json()
    return {"Authorization": f"Bearer {created.get_json()['token']}"}


def test_labels_join_their_predictions_and_what_cannot_apply_is_listed(app, client, served, classifier, admin):
    for request_id in ("a", "b"):
        client.post("/models/m/production/predict", json={"instances": [PROBE_ROW]}, headers={"X-Request-ID": request_id})
    client.post("/models/m/production/predict", json=BODY, headers={"X-Request-ID": "two-rows"})
    client.post("/models/m/production/predict", json={"instances": [["x", 1, 2]]}, headers={"X-Request-ID": "failed"})
    written(app)
    token = feedback_token(client, admin)

    response = client.post("/models/m/feedback", headers=token, json={"items": [
        {"request_id": "a", "label": 3.5},
        {"request_id": "nobody", "label": 1.0},
        {"request_id": "b", "label": "tall"},
        {"request_id": "two-rows", "label": [1.0, 2.0]},
        {"request_id": "failed", "label": 1.0},
        {"request_id": "a", "label": 4.0},
        {"request_id": "two-rows", "label": 1.0},
    ]})

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["applied"], body["replaced"]) == (3, 1)  # a (twice: the second replaces), two-rows
    assert [(e["index"], e["request_id"], e["status"]) for e in body["errors"]] == [
        (1, "nobody", 404), (2, "b", 422), (4, "failed", 422), (6, "two-rows", 422)]
    assert "not sampled" in body["errors"][0]["detail"] and "one label per row" in body["errors"][3]["detail"]
    items = {item["request_id"]: item for item in logged(client, admin).get_json()["items"]}
    assert items["a"]["label"] == 4.0 and items["two-rows"]["label"] == [1.0, 2.0] and items["b"]["label"] is None
    assert datetime.fromisoformat(items["a"]["labelled_at"]) >= datetime.fromisoformat(items["a"]["at"])


def test_a_classifier_takes_labels_of_its_classes_kind(app, client, classifier, ci):
    client.post("/models/c/production/predict", json={"instances": [PROBE_ROW]}, headers={"X-Request-ID": "k"})
    written(app)
    wrong = client.post("/models/c/feedback", headers=ci, json={"items": [{"request_id": "k", "label": "yes"}]})
    assert wrong.get_json()["errors"][0]["detail"].startswith("this classifier's classes are numbers")
    right = client.post("/models/c/feedback", headers=ci, json={"items": [{"request_id": "k", "label": 1}]})
    assert right.get_json() == {"applied": 1, "replaced": 0, "errors": []}


def test_a_feedback_token_may_label_but_not_read_inputs_nor_change_the_registry(client, served, admin):
    token = feedback_token(client, admin)
    assert client.post("/models/m/feedback", headers=token, json={"items": [{"request_id": "x", "label": 1}]}).status_code == 200
    assert_problem(client.get("/models/m/predictions", headers=token), 403, "'read_inputs'")
    assert_problem(client.post("/models/m/versions/2/promote", json={}, headers=token), 403, "this needs 'ci' or 'admin'")
    assert_problem(client.patch("/models/m", json={"prediction_log": {"sample": 1}}, headers=token), 403)


@pytest.mark.parametrize("body", [{}, {"items": []}, {"items": [{"label": 1}]}, {"items": [{"request_id": "a"}]},
                                  {"items": [{"request_id": "x" * 129, "label": 1}]},
                                  {"items": [{"request_id": "a", "label": 1}] * 10_001}])
def test_a_malformed_feedback_body_is_422(client, served, ci, body):
    assert_problem(client.post("/models/m/feedback", headers=ci, json=body), 422)


def test_readers_and_anonymous_callers_send_no_feedback(client, served, admin):
    created = client.post("/tokens", json={"name": "viewer", "role": "reader"}, headers=admin).get_json()["token"]
    body = {"items": [{"request_id": "a", "label": 1}]}
    assert_problem(client.post("/models/m/feedback", json=body, headers={"Authorization": f"Bearer {created}"}), 403,
                   "this needs 'feedback', 'ci' or 'admin'")
    assert_problem(client.post("/models/m/feedback", json=body), 401)


def test_v2_answers_are_logged_under_their_request_id_too(app, client, served, ci, analyst):
    answered = client.post("/v2/models/m/infer", headers={"X-Request-ID": "v2-7"},
                           json={"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [PROBE_ROW]}]})
    assert answered.status_code == 200, answered.get_json()
    written(app)
    (item,) = logged(client, analyst).get_json()["items"]
    assert (item["request_id"], item["alias"], item["inputs"]) == ("v2-7", "production", [PROBE_ROW])


def label(client, headers, name, items):
    response = client.post(f"/models/{name}/feedback", headers=headers, json={"items": items})
    assert response.status_code == 200 and not response.get_json()["errors"], response.get_json()


def test_a_regressors_live_quality_is_its_mean_absolute_error_on_the_labelled_rows(app, client, served, ci):
    answers = {}
    for i, row in enumerate([PROBE_ROW, [2.0, 0.0, 1.0], [0.5, 0.5, 0.5], [3.0, 1.0, -1.0], [0.0, 0.0, 9.0]]):
        answered = client.post("/models/m/production/predict", json={"instances": [row]}, headers={"X-Request-ID": f"q-{i}"})
        answers[f"q-{i}"] = answered.get_json()["predictions"][0]
    written(app)
    errors = [0.5, -1.5, 2.0, 0.0]  # labelled = predicted + error; q-4 stays unlabelled
    label(client, ci, "m", [{"request_id": f"q-{i}", "label": answers[f"q-{i}"] + e} for i, e in enumerate(errors)])

    body = client.get("/models/m/versions/production/monitoring?window=1h").get_json()

    assert (body["model"], body["version"], body["window"], body["requests"], body["labelled"]) == ("m", 1, "1h", 5, 4)
    quality = body["quality"]
    absolute = [abs(e) for e in errors]
    mae = sum(absolute) / 4
    half = 1.959963984540054 * statistics.stdev(absolute) / 2
    assert quality["metric"] == "mae" and quality["rows"] == 4
    assert quality["value"] == pytest.approx(mae)
    assert (quality["ci_low"], quality["ci_high"]) == (pytest.approx(max(0.0, mae - half)), pytest.approx(mae + half))
    assert quality["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / 4))
    assert body["label_delay_p50_s"] >= 0


def test_a_classifiers_live_quality_is_its_accuracy_with_a_wilson_interval(app, client, classifier, ci):
    predicted = []
    for i in range(8):
        row = [float(i % 3) - 1, float(i % 2), 0.5 * i - 2]
        answered = client.post("/models/c/production/predict", json={"instances": [row]}, headers={"X-Request-ID": f"c-{i}"})
        predicted.append(answered.get_json()["predictions"][0])
    written(app)
    truth = [p if i < 6 else 1 - p for i, p in enumerate(predicted)]  # six right, two wrong
    label(client, ci, "c", [{"request_id": f"c-{i}", "label": t} for i, t in enumerate(truth)])

    quality = client.get("/models/c/versions/1/monitoring").get_json()["quality"]

    expected = binomtest(6, 8).proportion_ci(confidence_level=0.95, method="wilson")
    assert (quality["metric"], quality["value"], quality["rows"]) == ("accuracy", 0.75, 8)
    assert quality["ci_low"] == pytest.approx(expected.low) and quality["ci_high"] == pytest.approx(expected.high)


def test_the_window_counts_only_what_it_covers_and_quality_waits_for_labels(app, client, served):
    client.post("/models/m/production/predict", json=BODY, headers={"X-Request-ID": "recent"})
    client.post("/models/m/production/predict", json=BODY, headers={"X-Request-ID": "old"})
    written(app)
    with app.app_context(), write_transaction() as session:
        row = session.execute(select(LoggedPrediction).where(LoggedPrediction.request_id == "old")).scalar_one()
        row.at = utcnow() - timedelta(hours=2)

    assert client.get("/models/m/versions/1/monitoring?window=1h").get_json()["requests"] == 1
    wide = client.get("/models/m/versions/1/monitoring?window=3h").get_json()
    assert (wide["requests"], wide["labelled"], wide["quality"], wide["label_delay_p50_s"]) == (2, 0, None, None)


@pytest.mark.parametrize("window", ["24", "24x", "0h", "367d", "1.5h", "-1h"])
def test_a_window_that_is_not_minutes_hours_or_days_is_422(client, served, window):
    assert_problem(client.get(f"/models/m/versions/1/monitoring?window={window}"), 422, "window")


def test_monitoring_an_unknown_version_is_404(client, served):
    assert_problem(client.get("/models/m/versions/9/monitoring"), 404)


def send_rows(client, rows, prefix):
    for i in range(0, len(rows), 10):
        answered = client.post("/models/m/production/predict", json={"instances": rows[i:i + 10]},
                               headers={"X-Request-ID": f"{prefix}-{i}"})
        assert answered.status_code == 200


def test_drift_compares_the_window_with_the_versions_first_served_rows(app, client, served):
    rng = np.random.default_rng(5)
    send_rows(client, rng.normal(size=(900, 3)).tolist(), "early")
    written(app)
    assert client.get("/models/m/versions/1/monitoring").get_json()["drift"] is None  # no complete reference yet
    send_rows(client, rng.normal(size=(150, 3)).tolist(), "reference")  # the first 1,000 rows are the reference
    written(app)
    assert client.get("/models/m/versions/1/monitoring").get_json()["drift"] is None  # 50 rows past it: too few

    shifted = rng.normal(size=(200, 3))
    shifted[:, 0] += 1.5  # the first feature moves; the others do not
    send_rows(client, shifted.tolist(), "recent")
    written(app)

    drift = client.get("/models/m/versions/1/monitoring").get_json()["drift"]
    assert (drift["reference"], drift["reference_rows"], drift["recent_rows"]) == ("traffic", 1000, 250)
    features = drift["features"]
    assert features["x0"]["drifted"] and features["x0"]["test"] == "ks" and features["x0"]["p_value"] < 1e-4
    assert not features["x1"]["drifted"] and not features["x2"]["drifted"]
    assert drift["predictions"]["drifted"]  # the model adds its inputs up: its answers moved with x0


def test_drift_is_judged_against_the_training_rows_once_they_are_sent(app, client, served, ci):
    rng = np.random.default_rng(7)
    url = "/models/m/versions/1/reference"
    assert_problem(client.get(url), 404, "no drift reference")
    training = rng.normal(size=(3000, 3))
    sent = client.put(url, json={"source": "training", "dataframe_split": {
        "columns": ["x2", "x0", "x1"], "data": training[:, [2, 0, 1]].tolist()}}, headers=ci)
    assert sent.status_code == 200, sent.get_json()
    body = sent.get_json()
    assert (body["model"], body["version"], body["source"], body["rows"], body["created_by"]) == ("m", 1, "training", 3000, "ci-test")
    assert list(body["features"]) == ["x0", "x1", "x2"] and sum(body["features"]["x0"]["counts"]) == 3000
    assert body["features"]["x0"]["kind"] == "numeric" and len(body["features"]["x0"]["edges"]) == 9
    assert "sample" not in body["features"]["x0"]  # kept for the KS test, not shown
    assert client.get(url).get_json() == body

    shifted = rng.normal(size=(150, 3))
    shifted[:, 1] -= 1.0  # x1 moved since training
    send_rows(client, shifted.tolist(), "served")
    written(app)

    drift = client.get("/models/m/versions/1/monitoring").get_json()["drift"]
    assert (drift["reference"], drift["reference_rows"], drift["recent_rows"]) == ("training", 3000, 150)
    assert drift["features"]["x1"]["drifted"] and drift["features"]["x1"]["test"] == "ks"
    assert not drift["features"]["x0"]["drifted"] and not drift["features"]["x2"]["drifted"]
    assert drift["predictions"]["drifted"]  # a sum of the inputs: it moved with x1

    again = client.put(url, json={"source": "evaluation", "instances": shifted.tolist()}, headers=ci)
    assert again.status_code == 200 and again.get_json()["source"] == "evaluation"
    drift = client.get("/models/m/versions/1/monitoring").get_json()["drift"]
    assert drift["reference"] == "evaluation" and not drift["features"]["x1"]["drifted"]  # judged by the new rows


@pytest.mark.parametrize("body, status, words", [
    ({"instances": [PROBE_ROW]}, 422, "source"),
    ({"source": "yesterday", "instances": [PROBE_ROW]}, 422, "source"),
    ({"source": "training"}, 422, "instances"),
    ({"source": "training", "instances": [["a", 1, 2]]}, 422, "number"),
    ({"source": "training", "instances": [PROBE_ROW], "rows": 3}, 422, "unexpected key"),
])
def test_a_reference_that_is_not_rows_of_the_signature_is_refused(client, served, ci, body, status, words):
    assert_problem(client.put("/models/m/versions/1/reference", json=body, headers=ci), status, words)
    assert_problem(client.get("/models/m/versions/1/reference"), 404)  # nothing half-kept


def test_a_reference_needs_ci_or_admin_and_a_ready_version(client, served, ci, admin):
    body = {"source": "training", "instances": [PROBE_ROW]}
    assert_problem(client.put("/models/m/versions/1/reference", json=body), 401)
    assert client.delete("/models/m/versions/2", headers=admin).status_code == 200
    assert_problem(client.put("/models/m/versions/2/reference", json=body, headers=ci), 410, "archived")
    assert_problem(client.put("/models/m/versions/9/reference", json=body, headers=ci), 404)


def test_a_shadow_run_is_logged_under_its_callers_id_labelled_with_it_and_figured_per_route(app, client, served, ci, analyst):
    upload_ok(client, ci, "m", scaled_sum(3))
    rollout = {"canary": {"version": 2, "percent": 50}, "shadow": {"version": 3, "percent": 100}, "sticky_header": "X-User"}
    assert client.put("/models/m/aliases/production/rollout", json=rollout, headers=ci).status_code == 200
    answered = {}
    for i in range(12):
        response = client.post("/models/m/production/predict", json={"instances": [PROBE_ROW]},
                               headers={"X-Request-ID": f"s-{i}", "X-User": f"user-{i}"})
        response.close()  # the shadow runs once the answer is sent
        answered[f"s-{i}"] = (response.get_json()["version"], response.get_json()["predictions"][0])
    assert app.extensions["model_registry"].runtime.shadows.wait_idle(10)
    written(app)

    items = logged(client, analyst, "?limit=100").get_json()["items"]
    shadows = {item["request_id"]: item for item in items if item["route"] == "shadow"}
    assert set(shadows) == set(answered)  # every logged answer has its shadow run beside it
    assert {(item["version"], item["alias"]) for item in shadows.values()} == {(3, "production")}
    own_answer = scaled_sum(3).predict([PROBE_ROW]).tolist()  # about 9, rounded as this machine's least squares fit it
    assert shadows["s-0"]["outputs"]["predictions"] == own_answer  # the shadow's own answer, scaled_sum(3)
    label(client, ci, "m", [{"request_id": rid, "label": predicted + 1.0} for rid, (_, predicted) in answered.items()])

    shadow = client.get("/models/m/versions/3/monitoring").get_json()
    assert (shadow["requests"], shadow["labelled"]) == (12, 12)
    assert set(shadow["routes"]) == {"shadow"}
    expected = statistics.mean(abs(3 * sum(PROBE_ROW) - (p + 1.0)) for _, p in answered.values())
    assert shadow["quality"]["value"] == pytest.approx(expected)
    canary_requests = sum(1 for version, _ in answered.values() if version == 2)
    canary = client.get("/models/m/versions/2/monitoring").get_json()["routes"]
    assert canary == {"canary": {"requests": canary_requests, "labelled": canary_requests,
                                 "quality": canary["canary"]["quality"]}}
    assert canary["canary"]["quality"]["value"] == pytest.approx(1.0)  # every label was its answer + 1


def test_a_full_call_of_labels_for_requests_of_several_rows_is_taken(client, served, ci):
    items = [{"request_id": f"r{n}", "label": [1.0, 2.0]} for n in range(MAX_FEEDBACK_ITEMS)]
    response = client.post("/models/m/feedback", headers=ci, json={"items": items})
    assert response.status_code == 200, response.json
    assert response.json["applied"] == 0 and len(response.json["errors"]) == MAX_FEEDBACK_ITEMS  # none was logged
