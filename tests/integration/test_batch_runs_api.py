"""Batch runs over HTTP: scoring jobs recorded against the version that scored them, read back,
announced to webhooks, bounded per version; refused to anonymous callers, readers and hostile bodies."""
import json

import pytest
from sqlalchemy import func, select

from registry.batch import runs
from registry.batch.tables import BatchRun
from registry.db import db
from registry.events.tables import WebhookEvent
from tests.helpers import assert_problem, scaled_sum, upload_ok

PUBLIC_URL = "https://93.184.215.14/hooks"


def run_body(**changes) -> dict:
    body = {
        "alias": "production", "engine": "spark", "inputs": ["s3://lake/churn/2026-11-24/*.parquet"],
        "outputs": ["s3://lake/scores/2026-11-24/"], "rows": 2_000_000, "status": "succeeded",
        "started_at": "2026-11-25T01:00:00Z", "finished_at": "2026-11-25T01:07:30+00:00",
    }
    return {**body, **changes}


def post_run(client, headers, number=1, **changes):
    return client.post(f"/models/m/versions/{number}/batch-runs", json=run_body(**changes), headers=headers)


def stored_runs(app) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(BatchRun)).scalar_one()


@pytest.fixture
def two(client, ci):
    """Model ``m`` with versions 1 and 2, ``production`` on 1."""
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200


def test_a_run_is_201_with_what_was_recorded_and_reads_back_by_number_and_alias(client, ci, two):
    response = post_run(client, ci, detail="")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()

    assert body["id"] > 0 and body["created_at"].endswith("Z")
    assert {k: v for k, v in body.items() if k not in ("id", "created_at")} == {
        "model": "m", "version": 1, "alias": "production", "engine": "spark",
        "inputs": ["s3://lake/churn/2026-11-24/*.parquet"], "outputs": ["s3://lake/scores/2026-11-24/"],
        "rows": 2_000_000, "status": "succeeded", "detail": "", "started_at": "2026-11-25T01:00:00Z",
        "finished_at": "2026-11-25T01:07:30Z", "created_by": "ci-test",
    }
    assert client.get("/models/m/versions/1/batch-runs").get_json() == {
        "items": [body], "total": 1, "page": 1, "per_page": 50}
    assert client.get("/models/m/versions/production/batch-runs").get_json()["items"] == [body]
    assert client.get("/models/m/versions/2/batch-runs").get_json()["total"] == 0


def test_runs_are_listed_newest_first_and_paged(client, ci, two):
    ids = [post_run(client, ci, rows=rows).get_json()["id"] for rows in (1, 2, 3)]

    page = client.get("/models/m/versions/1/batch-runs", query_string={"per_page": 2, "page": 2}).get_json()

    assert page["total"] == 3 and [run["id"] for run in page["items"]] == [ids[0]]


def test_a_failed_run_keeps_its_reason_and_a_pinned_run_has_no_alias(client, ci, two):
    failed = post_run(client, ci, alias=None, status="failed", outputs=[], rows=0,
                      detail="row 17 of part-0003.parquet: feature 'tenure' must be a number")
    assert failed.status_code == 201, failed.get_json()
    assert {k: failed.get_json()[k] for k in ("alias", "status", "outputs", "detail")} == {
        "alias": None, "status": "failed", "outputs": [],
        "detail": "row 17 of part-0003.parquet: feature 'tenure' must be a number"}


def test_an_archived_version_cannot_have_scored_a_job_that_succeeded_but_its_failures_are_recorded(
        app, client, ci, admin, two):
    assert client.delete("/models/m/versions/2", headers=admin).status_code == 200

    assert_problem(post_run(client, ci, number=2, alias=None), 410, "version 2 of 'm' is archived",
                   "record it as failed")
    assert stored_runs(app) == 0
    failed = post_run(client, ci, number=2, alias=None, status="failed", outputs=[], rows=0,
                      detail="version 2 of 'm' was archived while the job scored")
    assert failed.status_code == 201, failed.get_json()
    assert [run["status"] for run in client.get("/models/m/versions/2/batch-runs").get_json()["items"]] == ["failed"]


def test_a_run_is_sent_to_webhooks_in_its_transaction(app, client, ci, admin, two):
    created = client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["batch_run.recorded"]}, headers=admin)
    assert created.status_code == 201, created.get_json()

    run = post_run(client, ci).get_json()

    with app.app_context():
        events = db.session.execute(select(WebhookEvent).where(WebhookEvent.type == "batch_run.recorded")).scalars().all()
        assert len(events) == 1
        data = json.loads(events[0].body)["data"]
    assert data == {
        "model": "m", "version": 1, "batch_run_id": run["id"], "alias": "production", "engine": "spark",
        "inputs": run["inputs"], "outputs": run["outputs"], "rows": 2_000_000, "status": "succeeded", "detail": "",
        "started_at": "2026-11-25T01:00:00.000Z", "finished_at": "2026-11-25T01:07:30.000Z", "actor": "ci-test",
    }


def test_only_the_newest_runs_of_a_version_are_kept(app, client, ci, two, monkeypatch):
    monkeypatch.setattr(runs, "KEPT_PER_VERSION", 2)
    ids = [post_run(client, ci, rows=rows).get_json()["id"] for rows in (1, 2, 3)]
    other = post_run(client, ci, number=2, alias=None).get_json()["id"]

    assert [r["id"] for r in client.get("/models/m/versions/1/batch-runs").get_json()["items"]] == ids[:0:-1]
    assert [r["id"] for r in client.get("/models/m/versions/2/batch-runs").get_json()["items"]] == [other]
    assert stored_runs(app) == 3


def test_recording_a_run_needs_a_ci_or_admin_token(app, client, admin, two):
    reader = client.post("/tokens", json={"name": "dash", "role": "reader"}, headers=admin).get_json()["token"]

    assert_problem(post_run(client, {}), 401)
    assert_problem(post_run(client, {"Authorization": "Bearer mr_not-a-token"}), 401)
    assert_problem(post_run(client, {"Authorization": f"Bearer {reader}"}), 403, "reader", "'ci' or 'admin'")
    assert post_run(client, admin).get_json()["created_by"] == "admin"
    assert stored_runs(app) == 1


def test_reading_runs_needs_a_token_where_reads_need_one(build_app, ci):
    guarded = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()
    assert_problem(guarded.get("/models/m/versions/1/batch-runs"), 401)


@pytest.mark.parametrize("changes, fragment", [
    ({"engine": "hadoop"}, "engine"),
    ({"engine": None}, "engine"),
    ({"status": "running"}, "status"),
    ({"rows": -1}, "rows"),
    ({"rows": 1.5}, "rows"),
    ({"rows": "12"}, "rows"),
    ({"rows": 2**63}, "rows"),
    ({"inputs": []}, "inputs"),
    ({"inputs": "data/*.parquet"}, "inputs"),
    ({"inputs": [""]}, "inputs.0"),
    ({"inputs": ["x" * 2049]}, "inputs.0"),
    ({"inputs": ["p"] * 101}, "inputs"),
    ({"outputs": ["a\u0000b"]}, "outputs.0"),
    ({"inputs": [{"path": "x"}]}, "inputs.0"),
    ({"detail": "x" * 2001}, "detail"),
    ({"started_at": "yesterday"}, "started_at"),
    ({"started_at": "2026-11-25T01:00:00"}, "started_at"),  # no time zone: ambiguous
    ({"started_at": "0001-01-01T00:00:00+01:00"}, "started_at"),
    ({"finished_at": "9999-12-31T23:59:59-01:00"}, "finished_at"),
    ({"finished_at": "2026-11-25T00:59:59Z"}, "finished_at is before started_at"),
    ({"alias": "Production!"}, "invalid alias"),
    ({"alias": "latest"}, "latest"),
    ({"alias": 7}, "alias"),
    ({"version": 2}, "version"),
    ({"created_by": "someone-else"}, "created_by"),
])
def test_a_hostile_or_invalid_run_is_422_and_nothing_is_stored(app, client, ci, two, changes, fragment):
    assert_problem(post_run(client, ci, **changes), 422, fragment)
    assert stored_runs(app) == 0


@pytest.mark.parametrize("missing", ["engine", "inputs", "rows", "status", "started_at", "finished_at"])
def test_a_run_without_a_required_field_is_422(app, client, ci, two, missing):
    body = run_body()
    del body[missing]
    assert_problem(client.post("/models/m/versions/1/batch-runs", json=body, headers=ci), 422, missing)
    assert stored_runs(app) == 0


@pytest.mark.parametrize("body, content_type, status", [
    ("[1, 2]", "application/json", 422),
    ("{not json", "application/json", 400),
    ("engine=spark", "application/x-www-form-urlencoded", 415),
])
def test_a_body_that_is_not_a_json_object_is_refused(app, client, ci, two, body, content_type, status):
    response = client.post("/models/m/versions/1/batch-runs", data=body, content_type=content_type, headers=ci)
    assert_problem(response, status)
    assert stored_runs(app) == 0


@pytest.mark.parametrize("path, status", [
    ("/models/m/versions/9/batch-runs", 404),
    ("/models/nope/versions/1/batch-runs", 404),
    ("/models/m/versions/production/batch-runs", 422),
    ("/models/m/versions/99999999999999999999/batch-runs", 404),
])
def test_recording_against_an_unknown_or_aliased_version_is_refused(app, client, ci, two, path, status):
    assert_problem(client.post(path, json=run_body(), headers=ci), status)
    assert stored_runs(app) == 0


@pytest.mark.parametrize("query", [{"per_page": 501}, {"page": 0}, {"page": "x"}])
def test_a_bad_page_query_is_422(client, two, query):
    assert_problem(client.get("/models/m/versions/1/batch-runs", query_string=query), 422)
