"""Evaluations over HTTP: scores of versions on named datasets, per version and compared per dataset."""
import pytest

from registry.db import db
from registry.tables import Evaluation
from tests.helpers import assert_problem, scaled_sum, upload_ok

HOLDOUT = "a" * 64
OTHER = "b" * 64


def dataset(sha256=HOLDOUT, name="housing-holdout.csv", rows=120):
    return {"name": name, "sha256": sha256, "rows": rows}


def evaluate(client, headers, version, metrics, data=None, **extra):
    body = {"dataset": data or dataset(), "metrics": metrics, **extra}
    return client.post(f"/models/m/versions/{version}/evaluations", json=body, headers=headers)


def recorded(response) -> dict:
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def on_dataset(client, sha256=HOLDOUT, **params) -> dict:
    response = client.get("/models/m/evaluations", query_string={"dataset": sha256, **params})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def stored_evaluations(app) -> int:
    with app.app_context():
        return db.session.execute(db.select(db.func.count()).select_from(Evaluation)).scalar_one()


@pytest.fixture
def three(client, ci):
    """Model ``m`` with versions 1..3."""
    for factor in (1, 2, 3):
        upload_ok(client, ci, "m", scaled_sum(factor))


def test_recording_an_evaluation_is_201_with_what_was_recorded(client, ci, three):
    body = recorded(evaluate(client, ci, 2, {"r2": 0.33, "rmse": 1.5}, note="retrain 2026-11-20"))

    assert body["id"] > 0 and body["created_at"].endswith("Z")
    assert {k: body[k] for k in ("model", "version", "dataset", "metrics", "note", "created_by")} == {
        "model": "m", "version": 2, "dataset": dataset(), "metrics": {"r2": 0.33, "rmse": 1.5},
        "note": "retrain 2026-11-20", "created_by": "ci-test",
    }


def test_the_same_score_again_is_200_with_the_first_and_stores_nothing(app, client, ci, three):
    first = recorded(evaluate(client, ci, 1, {"r2": 0.5}, note="retrain"))
    again = evaluate(client, ci, 1, {"r2": 0.5}, note="retrain")
    assert again.status_code == 200 and again.get_json() == first
    assert stored_evaluations(app) == 1


@pytest.mark.parametrize("change", [{"metrics": {"r2": 0.6}}, {"note": "another run"},
                                    {"dataset": dataset(rows=121)}])
def test_a_different_score_name_rows_or_note_is_a_new_evaluation(app, client, ci, three, change):
    recorded(evaluate(client, ci, 1, {"r2": 0.5}, note="retrain"))
    body = {"metrics": {"r2": 0.5}, "note": "retrain", **change}
    recorded(evaluate(client, ci, 1, body.pop("metrics"), data=body.pop("dataset", None), **body))
    assert stored_evaluations(app) == 2


def test_the_same_score_after_another_one_is_recorded_again(app, client, ci, three):
    for metrics in ({"r2": 0.5}, {"r2": 0.6}, {"r2": 0.5}):
        recorded(evaluate(client, ci, 1, metrics))
    assert stored_evaluations(app) == 3


def test_a_versions_evaluations_are_listed_newest_first_and_paged(client, ci, three):
    first = recorded(evaluate(client, ci, 1, {"r2": 0.1}))
    second = recorded(evaluate(client, ci, 1, {"r2": 0.2}, data=dataset(OTHER, "fresh.csv")))
    recorded(evaluate(client, ci, 2, {"r2": 0.9}))

    page = client.get("/models/m/versions/1/evaluations?per_page=1&page=2").get_json()

    assert (page["total"], page["page"], page["per_page"]) == (2, 2, 1)
    assert page["items"] == [first]
    assert client.get("/models/m/versions/1/evaluations").get_json()["items"] == [second, first]


def test_a_versions_evaluations_can_be_read_through_an_alias(client, ci, three):
    evaluation = recorded(evaluate(client, ci, 3, {"r2": 0.5}))
    client.post("/models/m/versions/3/promote", json={}, headers=ci)

    assert client.get("/models/m/versions/production/evaluations").get_json()["items"] == [evaluation]


def test_a_dataset_lists_every_version_scored_on_it_with_its_newest_score(client, ci, three):
    recorded(evaluate(client, ci, 1, {"r2": 0.30}))
    recorded(evaluate(client, ci, 1, {"r2": 0.298}))
    recorded(evaluate(client, ci, 2, {"r2": 0.332}))
    recorded(evaluate(client, ci, 3, {"r2": 0.9}, data=dataset(OTHER)))

    page = on_dataset(client)

    assert page["total"] == 2
    assert [(e["version"], e["metrics"]["r2"]) for e in page["items"]] == [(2, 0.332), (1, 0.298)]


def test_a_dataset_sorts_by_a_metric_with_versions_without_it_last(client, ci, three):
    recorded(evaluate(client, ci, 1, {"r2": 0.5}))
    recorded(evaluate(client, ci, 2, {"rmse": 1.0}))
    recorded(evaluate(client, ci, 3, {"r2": 0.7}))

    descending = on_dataset(client, sort="-metrics.r2")["items"]
    ascending = on_dataset(client, sort="metrics.r2")["items"]

    assert [e["version"] for e in descending] == [3, 1, 2]
    assert [e["version"] for e in ascending] == [1, 3, 2]
    assert [e["version"] for e in on_dataset(client, sort="metrics.r2", per_page=1, page=2)["items"]] == [3]


def test_a_dataset_accepts_the_sha256_in_capitals(client, ci, three):
    recorded(evaluate(client, ci, 1, {"r2": 0.5}, data=dataset("AB" * 32)))

    assert on_dataset(client, "ab" * 32)["total"] == 1
    assert on_dataset(client, "AB" * 32)["items"][0]["dataset"]["sha256"] == "ab" * 32


def test_archived_versions_leave_the_dataset_list_unless_asked_for(client, ci, admin, three):
    recorded(evaluate(client, ci, 1, {"r2": 0.5}))
    recorded(evaluate(client, ci, 2, {"r2": 0.6}))
    client.delete("/models/m/versions/1", headers=admin)

    assert [e["version"] for e in on_dataset(client)["items"]] == [2]
    assert [e["version"] for e in on_dataset(client, include_archived="true")["items"]] == [2, 1]
    assert client.get("/models/m/versions/1/evaluations").get_json()["total"] == 1


def test_an_unknown_dataset_is_an_empty_list(client, three):
    assert on_dataset(client, OTHER) == {"items": [], "total": 0, "page": 1, "per_page": 50}


@pytest.mark.parametrize("body, fragment", [
    ({"metrics": {"r2": 0.5}}, "dataset"),
    ({"dataset": dataset(), "metrics": {}}, "at least one metric"),
    ({"dataset": dataset()}, "metrics"),
    ({"dataset": dataset(), "metrics": {"r2": "high"}}, "metrics.r2: must be a finite number"),
    ({"dataset": dataset(), "metrics": {"r2": True}}, "metrics.r2"),
    ({"dataset": dataset(), "metrics": {"r2": None}}, "metrics.r2"),
    ({"dataset": dataset(), "metrics": {"r2": 10**400}}, "metrics.r2"),
    ({"dataset": dataset(), "metrics": [0.5]}, "metrics"),
    ({"dataset": dataset(sha256="abc"), "metrics": {"r2": 0.5}}, "dataset.sha256: must be a sha256"),
    ({"dataset": dataset(sha256="g" * 64), "metrics": {"r2": 0.5}}, "dataset.sha256"),
    ({"dataset": dataset(name=""), "metrics": {"r2": 0.5}}, "dataset.name"),
    ({"dataset": dataset(rows=0), "metrics": {"r2": 0.5}}, "dataset.rows"),
    ({"dataset": dataset(rows=1.5), "metrics": {"r2": 0.5}}, "dataset.rows"),
    ({"dataset": dataset(rows="120"), "metrics": {"r2": 0.5}}, "dataset.rows"),
    ({"dataset": {"name": "x", "sha256": HOLDOUT}, "metrics": {"r2": 0.5}}, "dataset.rows"),
    ({"dataset": {**dataset(), "url": "s3://x"}, "metrics": {"r2": 0.5}}, "dataset.url"),
    ({"dataset": dataset(), "metrics": {"r2": 0.5}, "score": 1}, "score"),
    ({"dataset": dataset(), "metrics": {"r2": 0.5}, "note": "a\u0000b"}, "note"),
])
def test_an_invalid_evaluation_is_422_and_nothing_is_stored(app, client, ci, three, body, fragment):
    response = client.post("/models/m/versions/1/evaluations", json=body, headers=ci)

    assert_problem(response, 422, fragment)
    assert stored_evaluations(app) == 0


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_metric_is_422_and_nothing_is_stored(app, client, ci, three, token):
    body = '{"dataset": {"name": "h", "sha256": "%s", "rows": 3}, "metrics": {"r2": %s}}' % (HOLDOUT, token)

    response = client.post("/models/m/versions/1/evaluations", data=body, content_type="application/json", headers=ci)

    assert_problem(response, 422, "metrics.r2: must be a finite number")
    assert stored_evaluations(app) == 0


def test_evaluating_an_archived_version_is_410_and_nothing_is_stored(app, client, ci, admin, three):
    client.delete("/models/m/versions/1", headers=admin)

    assert_problem(evaluate(client, ci, 1, {"r2": 0.5}), 410, "archived")
    assert stored_evaluations(app) == 0


@pytest.mark.parametrize("path", ["/models/m/versions/9/evaluations", "/models/nope/versions/1/evaluations"])
def test_evaluating_an_unknown_version_or_model_is_404(app, client, ci, three, path):
    response = client.post(path, json={"dataset": dataset(), "metrics": {"r2": 0.5}}, headers=ci)

    assert_problem(response, 404)
    assert stored_evaluations(app) == 0


def test_evaluating_through_an_alias_is_422(client, ci, three):
    client.post("/models/m/versions/1/promote", json={}, headers=ci)

    assert_problem(client.post("/models/m/versions/production/evaluations",
                               json={"dataset": dataset(), "metrics": {"r2": 0.5}}, headers=ci), 422, "version number")


@pytest.mark.parametrize("query, fragment", [
    ({}, "dataset"),
    ({"dataset": "abc"}, "dataset: must be a sha256"),
    ({"dataset": HOLDOUT, "sort": "-accuracy"}, "unknown sort key"),
    ({"dataset": HOLDOUT, "per_page": 501}, "per_page"),
])
def test_a_bad_dataset_query_is_422(client, three, query, fragment):
    assert_problem(client.get("/models/m/evaluations", query_string=query), 422, fragment)


def test_recording_an_evaluation_needs_a_ci_or_admin_token(app, client, admin, three):
    reader = client.post("/tokens", json={"name": "dash", "role": "reader"}, headers=admin).get_json()["token"]

    assert_problem(evaluate(client, {}, 1, {"r2": 0.5}), 401)
    assert_problem(evaluate(client, {"Authorization": f"Bearer {reader}"}, 1, {"r2": 0.5}), 403, "reader")
    assert recorded(evaluate(client, admin, 1, {"r2": 0.5}))["created_by"] == "admin"
    assert stored_evaluations(app) == 1
