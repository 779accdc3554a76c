"""Deleting an alias, and the alias map at any past instant replayed from the history."""
from datetime import datetime, timedelta, timezone

import pytest

from registry.db import db, write_transaction
from registry.tables import PromotionEvent, RegisteredModel
from tests.helpers import assert_problem, scaled_sum, upload_ok

PROBE = [[1.0, 1.0, 1.0]]


def promote(client, headers, version, alias="production"):
    response = client.post(f"/models/m/versions/{version}/promote", json={"alias": alias}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def rollback(client, headers, **body):
    return client.post("/models/m/rollback", json=body, headers=headers)


def delete(client, headers, alias="production", **params):
    return client.delete(f"/models/m/aliases/{alias}", headers=headers, query_string=params)


def aliases(client, at=None):
    response = client.get("/models/m/aliases", query_string={"at": at} if at else None)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


@pytest.fixture
def three(client, ci):
    """Model ``m`` with versions 1..3 and no alias yet."""
    for factor in (1, 2, 3):
        upload_ok(client, ci, "m", scaled_sum(factor))


# ---- delete -----------------------------------------------------------------------------------

def test_deleting_an_alias_removes_it_and_answers_the_recorded_event(client, ci, three):
    promote(client, ci, 2)
    promote(client, ci, 3, alias="staging")

    response = delete(client, ci, reason="retired")

    assert response.status_code == 200
    event = response.get_json()
    assert (event["action"], event["alias"], event["from_version"], event["to_version"]) == ("delete", "production", 2, None)
    assert (event["actor"], event["reason"]) == ("ci-test", "retired")
    assert aliases(client) == {"staging": 3}
    assert client.get("/models/m/history").get_json()["items"][0] == event
    assert client.get("/models/m/versions/2").get_json()["aliases"] == []


def test_a_deleted_alias_answers_404_on_its_routes_at_once(client, ci, three):
    promote(client, ci, 1)
    assert client.post("/models/m/production/predict", json={"instances": PROBE}).status_code == 200

    delete(client, ci)

    assert_problem(client.post("/models/m/production/predict", json={"instances": PROBE}), 404, "production")
    assert_problem(client.post("/models/m/predict", json={"instances": PROBE}), 404, "production")
    assert_problem(client.get("/models/m/versions/production"), 404, "production")


def test_a_version_is_archivable_once_its_alias_is_deleted(client, ci, admin, three):
    promote(client, ci, 1)
    assert client.delete("/models/m/versions/1", headers=admin).status_code == 409

    delete(client, ci)

    assert client.delete("/models/m/versions/1", headers=admin).get_json()["status"] == "archived"


@pytest.mark.parametrize("alias, status", [("staging", 404), ("Not-An-Alias", 404), ("latest", 422)])
def test_deleting_an_alias_that_is_not_set_is_refused_and_records_nothing(client, ci, three, alias, status):
    promote(client, ci, 1)

    assert_problem(delete(client, ci, alias=alias), status, alias)
    assert [e["action"] for e in client.get("/models/m/history").get_json()["items"]] == ["promote"]


def test_deleting_an_alias_of_an_unknown_model_is_404(client, ci):
    assert_problem(client.delete("/models/nope/aliases/production", headers=ci), 404, "nope")


@pytest.mark.parametrize("headers, status", [({}, 401), ({"Authorization": "Bearer wrong"}, 401)])
def test_deleting_an_alias_needs_a_ci_or_admin_token(client, ci, three, headers, status):
    promote(client, ci, 1)

    assert_problem(delete(client, headers), status)
    assert aliases(client) == {"production": 1}


def test_rollback_after_a_delete_is_409_until_a_promote_sets_the_alias_again(client, ci, three):
    promote(client, ci, 1)
    promote(client, ci, 2)
    delete(client, ci)

    assert_problem(rollback(client, ci), 409, "not set")
    promote(client, ci, 3)
    assert_problem(rollback(client, ci), 409, "no earlier version")
    assert_problem(rollback(client, ci, to_version=1), 409, "cannot roll back to version 1")
    promote(client, ci, 1)
    assert rollback(client, ci).get_json()["version"] == 3


# ---- time travel ------------------------------------------------------------------------------

def test_the_alias_map_at_each_instant_replays_promotes_rollbacks_and_deletes(client, ci, three):
    before = now()
    promote(client, ci, 1)
    after_first = now()
    promote(client, ci, 2)
    promote(client, ci, 3, alias="staging")
    after_staging = now()
    assert rollback(client, ci).status_code == 200
    after_rollback = now()
    delete(client, ci, alias="staging")
    after_delete = now()

    assert aliases(client, iso(before)) == {}
    assert aliases(client, iso(after_first)) == {"production": 1}
    assert aliases(client, iso(after_staging)) == {"production": 2, "staging": 3}
    assert aliases(client, iso(after_rollback)) == {"production": 1, "staging": 3}
    assert aliases(client, iso(after_delete)) == {"production": 1} == aliases(client)


def test_rollout_events_move_the_alias_only_when_the_rollout_is_promoted(app, client, ci, three):
    promote(client, ci, 1)
    marks = []
    for action, to_version in [("rollout_start", 2), ("rollout_change", 3), ("rollout_abort", 3), ("rollout_promote", 2)]:
        _record(app, action, from_version=1, to_version=to_version)
        marks.append(now())

    assert [aliases(client, iso(mark))["production"] for mark in marks] == [1, 1, 1, 2]


def _record(app, action: str, from_version: int, to_version: int) -> None:
    """An event as the rollout use cases write it (they live beside, not in, this module)."""
    with app.app_context(), write_transaction():
        model = db.session.execute(db.select(RegisteredModel).where(RegisteredModel.name == "m")).scalar_one()
        db.session.add(PromotionEvent(model_id=model.id, alias="production", action=action,
                                      from_version=from_version, to_version=to_version, actor="ci-test"))


@pytest.mark.parametrize("offset", ["+02:00", "-05:30", "+00:00"])
def test_an_instant_with_an_offset_means_the_same_moment_in_utc(client, ci, three, offset):
    promote(client, ci, 1)
    instant = now()
    promote(client, ci, 2)
    sign, hours, minutes = offset[0], int(offset[1:3]), int(offset[4:6])
    zone = timezone((1 if sign == "+" else -1) * timedelta(hours=hours, minutes=minutes))

    assert aliases(client, instant.astimezone(zone).isoformat()) == {"production": 1}


def test_an_instant_without_an_offset_is_taken_as_utc(client, ci, three):
    promote(client, ci, 1)
    instant = now()
    promote(client, ci, 2)

    assert aliases(client, instant.replace(tzinfo=None).isoformat()) == {"production": 1}


def test_an_instant_before_the_model_existed_is_an_empty_map(client, ci, three):
    promote(client, ci, 1)

    assert aliases(client, "2001-01-01T00:00:00Z") == {}


@pytest.mark.parametrize("at", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-20T25:00:00Z", "", "1700000000"])
def test_a_malformed_instant_is_422(client, ci, three, at):
    assert_problem(client.get("/models/m/aliases", query_string={"at": at}), 422, "at")


def test_an_instant_in_the_future_is_422(client, ci, three):
    future = iso(now() + timedelta(hours=1))

    assert_problem(client.get("/models/m/aliases", query_string={"at": future}), 422, "in the future")


def test_time_travel_on_an_unknown_model_is_404(client):
    assert_problem(client.get("/models/nope/aliases", query_string={"at": "2026-01-01T00:00:00Z"}), 404, "nope")
