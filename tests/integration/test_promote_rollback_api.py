"""Promote and rollback over HTTP: where aliases point, the undo stack, and the audit history."""
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from tests.helpers import assert_problem, scaled_sum, upload, upload_ok

PROBE = [[1.0, 1.0, 1.0]]


def promote(client, headers, version, name="m", **body):
    return client.post(f"/models/{name}/versions/{version}/promote", json=body, headers=headers)


def rollback(client, headers, name="m", **body):
    return client.post(f"/models/{name}/rollback", json=body, headers=headers)


def moved(response, version, previous, alias="production", name="m") -> dict:
    """The body of a 200 move of ``alias`` from ``previous`` to ``version``."""
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"model", "alias", "version", "previous_version", "event_id"}
    assert (body["model"], body["alias"], body["version"], body["previous_version"]) == (name, alias, version, previous)
    return body


def alias_map(client, name="m") -> dict:
    response = client.get(f"/models/{name}/aliases")
    assert response.status_code == 200
    return response.get_json()


def events(client, name="m", **params) -> list[dict]:
    response = client.get(f"/models/{name}/history", query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def moves_of(client, name="m", **params) -> list[tuple]:
    """History as ``(action, alias, from, to)``, newest first."""
    return [(e["action"], e["alias"], e["from_version"], e["to_version"]) for e in events(client, name, **params)]


def served_version(client, ref="production", name="m", rows=PROBE) -> int:
    response = client.post(f"/models/{name}/{ref}/predict", json={"instances": rows})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["version"]


@pytest.fixture
def four(client, ci):
    """Model ``m`` with compatible versions 1..4 and no alias yet."""
    for factor in (1, 2, 3, 4):
        upload_ok(client, ci, "m", scaled_sum(factor))


def promote_chain(client, headers, *versions, alias="production"):
    for version in versions:
        assert promote(client, headers, version, alias=alias).status_code == 200


# -- promote -----------------------------------------------------------------------------------


def test_promote_points_the_alias_and_records_who_and_why(client, ci, four):
    body = moved(promote(client, ci, 2, reason="better r2"), 2, None)
    assert isinstance(body["event_id"], int)

    assert alias_map(client) == {"production": 2}
    assert client.get("/models/m/versions/production").get_json()["version"] == 2
    assert client.get("/models/m/versions/2").get_json()["aliases"] == ["production"]
    assert served_version(client) == 2
    [event] = events(client)
    assert event["id"] == body["event_id"]
    assert {k: event[k] for k in ("alias", "from_version", "to_version", "action", "actor", "reason", "forced")} == {
        "alias": "production", "from_version": None, "to_version": 2, "action": "promote",
        "actor": "ci-test", "reason": "better r2", "forced": False,
    }
    assert event["at"].endswith("Z")


def test_promote_then_promote_again_records_the_previous_version(client, ci, four):
    moved(promote(client, ci, 1), 1, None)
    moved(promote(client, ci, 3), 3, 1)
    assert alias_map(client) == {"production": 3}
    assert moves_of(client) == [("promote", "production", 1, 3), ("promote", "production", None, 1)]


def test_promote_without_a_body_moves_production(client, ci, four):
    response = client.post("/models/m/versions/1/promote", headers=ci)
    moved(response, 1, None)
    assert alias_map(client) == {"production": 1}


def test_aliases_move_independently(client, ci, four):
    moved(promote(client, ci, 1), 1, None)
    moved(promote(client, ci, 2, alias="staging"), 2, None, alias="staging")
    moved(promote(client, ci, 3, alias="staging"), 3, 2, alias="staging")

    assert alias_map(client) == {"production": 1, "staging": 3}
    assert served_version(client, "staging") == 3
    assert served_version(client, "production") == 1
    model = client.get("/models/m").get_json()
    assert model["aliases"] == {"production": 1, "staging": 3}
    assert "latest" not in model["aliases"]


def test_promoting_the_current_version_is_a_no_op_without_an_event(client, ci, four):
    first = moved(promote(client, ci, 2), 2, None)
    again = moved(promote(client, ci, 2, reason="again"), 2, 2)

    assert again["event_id"] is None
    assert alias_map(client) == {"production": 2}
    assert [e["id"] for e in events(client)] == [first["event_id"]]


def test_an_admin_may_promote_and_is_recorded_as_the_actor(client, admin, four):
    moved(promote(client, admin, 1), 1, None)
    assert events(client)[0]["actor"] == "admin"


@pytest.mark.parametrize(
    "headers, status",
    [({}, 401), ({"Authorization": "Bearer not-a-token"}, 401), ({"Authorization": "Basic abc"}, 401)],
    ids=["anonymous", "unknown-token", "not-bearer"],
)
def test_promote_and_rollback_need_a_token(client, ci, four, headers, status):
    promote_chain(client, ci, 1, 2)
    for response in (promote(client, headers, 3), rollback(client, headers)):
        assert_problem(response, status)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert alias_map(client) == {"production": 2}
    assert len(events(client)) == 2


def test_promoting_an_archived_version_is_410_and_changes_nothing(client, ci, admin, four):
    moved(promote(client, ci, 1), 1, None)
    assert client.delete("/models/m/versions/2", headers=admin).status_code == 200

    assert_problem(promote(client, ci, 2), 410, "version 2", "archived")
    assert alias_map(client) == {"production": 1}
    assert len(events(client)) == 1


def test_latest_cannot_be_promoted_to(client, ci, four):
    assert_problem(promote(client, ci, 1, alias="latest"), 422, "'latest' is computed")
    assert alias_map(client) == {}
    assert events(client) == []


@pytest.mark.parametrize("alias", ["Production", "1st", "123", "has space", "a.b", "", "a" * 65, "prod!", "-x"])
def test_an_invalid_alias_name_is_422(client, ci, four, alias):
    assert_problem(promote(client, ci, 1, alias=alias), 422, "invalid alias")
    assert alias_map(client) == {}


@pytest.mark.parametrize(
    "body, field",
    [({"force": "maybe"}, "force"), ({"alias": 3}, "alias"), ({"colour": "red"}, "colour"), ({"reason": "x" * 2001}, "reason")],
    ids=["force-not-boolean", "alias-not-string", "unknown-field", "reason-too-long"],
)
def test_a_malformed_promote_body_is_422(client, ci, four, body, field):
    body = assert_problem(client.post("/models/m/versions/1/promote", json=body, headers=ci), 422, field)
    assert field in body["errors"]
    assert alias_map(client) == {}


@pytest.mark.parametrize(
    "path, detail",
    [("/models/nope/versions/1/promote", "model 'nope' does not exist"), ("/models/m/versions/9/promote", "no version 9")],
)
def test_promoting_an_unknown_model_or_version_is_404(client, ci, four, path, detail):
    assert_problem(client.post(path, json={}, headers=ci), 404, detail)


def _strict_colour_pipeline() -> Pipeline:
    """A regressor whose encoder refuses colours it was not fitted on."""
    frame = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "colour": ["red", "green", "red", "green"]})
    columns = ColumnTransformer(
        [("colour", OneHotEncoder(handle_unknown="error"), ["colour"])], remainder="passthrough"
    )
    return Pipeline([("prepare", columns), ("model", LinearRegression())]).fit(frame, [1.0, 2.0, 3.0, 4.0])


def test_a_version_that_cannot_score_its_input_example_is_refused_and_nothing_changes(client, ci):
    good, bad = _strict_colour_pipeline(), _strict_colour_pipeline()
    upload_ok(client, ci, "m", good, {"input_example": [[1.0, "red"]]})
    bad.named_steps["model"].intercept_ += 1  # other bytes, same behaviour
    upload_ok(client, ci, "m", bad, {"input_example": [[2.0, "purple"]]})
    moved(promote(client, ci, 1), 1, None)

    body = assert_problem(promote(client, ci, 2), 422, "version 2", "smoke test", "not promoted")
    assert "/" not in body["detail"]  # no file paths leak
    assert alias_map(client) == {"production": 1}
    assert moves_of(client) == [("promote", "production", None, 1)]
    assert served_version(client, rows=[[1.0, "red"]]) == 1


def test_a_first_promote_of_a_version_that_cannot_serve_sets_no_alias(client, ci):
    upload_ok(client, ci, "m", _strict_colour_pipeline(), {"input_example": [[2.0, "purple"]]})
    assert_problem(promote(client, ci, 1, alias="staging"), 422, "smoke test")
    assert alias_map(client) == {}
    assert events(client) == []


def _default_encoder_pipeline(nested: bool) -> Pipeline:
    """A classifier behind scikit-learn's default (strict) encoders, fitted on a DataFrame."""
    frame = pd.DataFrame({
        "size": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "colour": ["red", "green", "red", "green", "blue", "blue"],
        "city": ["Paris", "Lyon", "Lyon", "Paris", "Nice", "Nice"],
    })
    colour = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()) if nested else OneHotEncoder()
    columns = ColumnTransformer(
        [("colour", colour, ["colour"]), ("city", OrdinalEncoder(), [2])], remainder="passthrough"
    )
    return Pipeline([("prepare", columns), ("model", LogisticRegression())]).fit(frame, [0, 1, 0, 1, 0, 1])


@pytest.mark.parametrize("nested", [False, True], ids=["encoder", "imputer-then-encoder"])
def test_a_version_with_strict_encoders_and_no_input_example_can_be_promoted(client, ci, nested):
    upload_ok(client, ci, "m", _default_encoder_pipeline(nested))
    moved(promote(client, ci, 1), 1, None)
    assert alias_map(client) == {"production": 1}


@pytest.mark.parametrize(
    "candidate, metadata, problem",
    [
        (scaled_sum(2), {"feature_names": ["a", "b", "c"]}, "features ['a', 'b', 'c'] vs ['x0', 'x1', 'x2']"),
        (scaled_sum(2, n_features=4), None, "features ['x0', 'x1', 'x2', 'x3'] vs ['x0', 'x1', 'x2']"),
        (
            LogisticRegression().fit(np.random.default_rng(0).normal(size=(20, 3)), [0, 1] * 10),
            None,
            "task classification vs regression",
        ),
    ],
    ids=["other-names", "other-count", "other-task"],
)
def test_an_incompatible_version_needs_force_which_is_recorded(client, ci, candidate, metadata, problem):
    upload_ok(client, ci, "m", scaled_sum(1))
    upload_ok(client, ci, "m", candidate, metadata)
    moved(promote(client, ci, 1), 1, None)

    body = assert_problem(promote(client, ci, 2), 422, "incompatible with version 1", problem, '"force": true')
    assert body["errors"]["signature"]
    assert alias_map(client) == {"production": 1}
    assert len(events(client)) == 1

    moved(promote(client, ci, 2, force=True, reason="new feature set"), 2, 1)
    assert alias_map(client) == {"production": 2}
    newest = events(client)[0]
    assert (newest["to_version"], newest["forced"], newest["reason"]) == (2, True, "new feature set")


def test_compatibility_is_checked_against_the_same_alias_only(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    upload_ok(client, ci, "m", scaled_sum(2, n_features=4))
    moved(promote(client, ci, 1), 1, None)
    moved(promote(client, ci, 2, alias="staging"), 2, None, alias="staging")
    assert events(client)[0]["forced"] is False


def test_force_is_recorded_only_when_it_overrode_an_incompatibility(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    upload_ok(client, ci, "m", scaled_sum(2))
    moved(promote(client, ci, 1), 1, None)
    moved(promote(client, ci, 2, force=True), 2, 1)
    assert events(client)[0]["forced"] is False


# -- rollback ----------------------------------------------------------------------------------


def test_rollback_is_an_undo_stack(client, ci, four):
    promote_chain(client, ci, 1, 2, 3)

    first = moved(rollback(client, ci, reason="bad latency"), 2, 3)
    assert alias_map(client) == {"production": 2}
    assert served_version(client) == 2
    moved(rollback(client, ci), 1, 2)
    assert alias_map(client) == {"production": 1}

    assert_problem(rollback(client, ci), 409, "no earlier version")
    assert alias_map(client) == {"production": 1}
    history = events(client)
    assert [(e["action"], e["from_version"], e["to_version"]) for e in history] == [
        ("rollback", 2, 1), ("rollback", 3, 2), ("promote", 2, 3), ("promote", 1, 2), ("promote", None, 1),
    ]
    assert history[1]["id"] == first["event_id"]
    assert (history[1]["actor"], history[1]["reason"], history[1]["forced"]) == ("ci-test", "bad latency", False)


def test_a_promote_after_rollbacks_starts_a_new_head(client, ci, four):
    promote_chain(client, ci, 1, 2, 3)
    moved(rollback(client, ci), 2, 3)
    moved(promote(client, ci, 4), 4, 2)

    moved(rollback(client, ci), 2, 4)
    moved(rollback(client, ci), 1, 2)
    assert_problem(rollback(client, ci), 409)
    assert moves_of(client)[:4] == [
        ("rollback", "production", 2, 1), ("rollback", "production", 4, 2),
        ("promote", "production", 2, 4), ("rollback", "production", 3, 2),
    ]


def test_rollback_to_a_version_jumps_back_several_steps(client, ci, four):
    promote_chain(client, ci, 1, 2, 3, 4)

    moved(rollback(client, ci, to_version=2), 2, 4)
    assert alias_map(client) == {"production": 2}
    # The promotes to 3 and 4 are undone: 3 is no longer reachable, and the next undo goes to 1.
    assert_problem(rollback(client, ci, to_version=3), 409, "it can go back to 1")
    moved(rollback(client, ci), 1, 2)
    assert_problem(rollback(client, ci), 409)


def test_rollback_to_a_version_the_alias_never_had_is_409_listing_the_reachable_ones(client, ci, four):
    promote_chain(client, ci, 1, 2, 3)
    assert_problem(rollback(client, ci, to_version=4), 409, "cannot roll back to version 4", "it can go back to 1, 2")
    assert alias_map(client) == {"production": 3}
    assert len(events(client)) == 3


def test_the_409_never_offers_the_version_the_alias_serves(client, ci, four):
    promote_chain(client, ci, 1, 2, 1)
    body = assert_problem(rollback(client, ci, to_version=4), 409, "it can go back to 2")
    assert "1, 2" not in body["detail"]


def test_rollback_to_the_version_the_alias_points_at_is_409_and_changes_nothing(client, ci, four):
    promote_chain(client, ci, 1, 2, 1)
    assert_problem(rollback(client, ci, to_version=1), 409, "already points at version 1")
    assert alias_map(client) == {"production": 1}
    assert len(events(client)) == 3


def test_rollback_to_an_archived_version_is_410_and_changes_nothing(client, ci, admin, four):
    promote_chain(client, ci, 1, 2)
    assert client.delete("/models/m/versions/1", headers=admin).status_code == 200

    assert_problem(rollback(client, ci), 410, "version 1", "archived")
    assert_problem(rollback(client, ci, to_version=1), 410, "archived")
    assert alias_map(client) == {"production": 2}
    assert len(events(client)) == 2


def test_rollback_of_an_alias_that_is_not_set_is_409(client, ci, four):
    assert_problem(rollback(client, ci), 409, "'production'", "not set")
    promote_chain(client, ci, 1)
    assert_problem(rollback(client, ci, alias="staging"), 409, "'staging'", "not set")
    assert len(events(client)) == 1


def test_rollback_of_a_fresh_alias_is_409(client, ci, four):
    promote_chain(client, ci, 1)
    assert_problem(rollback(client, ci), 409, "no earlier version")
    assert_problem(rollback(client, ci, to_version=2), 409, "it can go back to no version")


def test_rollback_moves_only_the_alias_it_names(client, ci, four):
    promote_chain(client, ci, 1, 2)
    promote_chain(client, ci, 3, 4, alias="staging")

    moved(rollback(client, ci, alias="staging"), 3, 4, alias="staging")
    assert alias_map(client) == {"production": 2, "staging": 3}
    moved(rollback(client, ci), 1, 2)
    assert alias_map(client) == {"production": 1, "staging": 3}


def test_rollback_of_an_unknown_model_is_404(client, ci):
    assert_problem(rollback(client, ci, name="nope"), 404, "model 'nope' does not exist")


@pytest.mark.parametrize(
    "body, field",
    [({"to_version": 0}, "to_version"), ({"to_version": "two"}, "to_version"), ({"force": True}, "force")],
)
def test_a_malformed_rollback_body_is_422(client, ci, four, body, field):
    promote_chain(client, ci, 1, 2)
    assert_problem(rollback(client, ci, **body), 422, field)
    assert alias_map(client) == {"production": 2}


def test_rollback_with_latest_as_alias_is_422(client, ci, four):
    assert_problem(rollback(client, ci, alias="latest"), 422, "'latest' is computed")


# -- history -----------------------------------------------------------------------------------


def test_history_filters_by_alias(client, ci, four):
    promote_chain(client, ci, 1, 2)
    promote_chain(client, ci, 3, alias="staging")
    moved(rollback(client, ci), 1, 2)

    assert moves_of(client, alias="staging") == [("promote", "staging", None, 3)]
    assert moves_of(client, alias="production") == [
        ("rollback", "production", 2, 1), ("promote", "production", 1, 2), ("promote", "production", None, 1),
    ]
    assert moves_of(client, alias="canary") == []
    assert len(events(client)) == 4


def test_history_pages_newest_first(client, ci, four):
    promote_chain(client, ci, 1, 2, 3, 4)
    moved(rollback(client, ci), 3, 4)

    everything = events(client)
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    pages = [client.get("/models/m/history", query_string={"per_page": 2, "page": p}).get_json() for p in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [5, 5, 5, 5]
    assert [(p["page"], p["per_page"]) for p in pages] == [(1, 2), (2, 2), (3, 2), (4, 2)]
    assert [e["id"] for p in pages for e in p["items"]] == [e["id"] for e in everything]
    assert [len(p["items"]) for p in pages] == [2, 2, 1, 0]
    filtered = client.get("/models/m/history", query_string={"alias": "production", "per_page": 1}).get_json()
    assert (filtered["total"], len(filtered["items"])) == (5, 1)


@pytest.mark.parametrize("params", [{"per_page": 0}, {"per_page": 501}, {"page": 0}, {"page": "x"}])
def test_history_refuses_bad_paging(client, ci, four, params):
    assert_problem(client.get("/models/m/history", query_string=params), 422)


def test_history_and_aliases_of_an_unknown_model_are_404(client):
    assert_problem(client.get("/models/nope/history"), 404, "'nope'")
    assert_problem(client.get("/models/nope/aliases"), 404, "'nope'")


def test_an_alias_still_pointed_at_blocks_archiving_until_it_moves(client, ci, admin, four):
    promote_chain(client, ci, 1, 2)
    assert_problem(client.delete("/models/m/versions/2", headers=admin), 409, "production")
    moved(rollback(client, ci), 1, 2)
    assert client.delete("/models/m/versions/2", headers=admin).status_code == 200
    # Version 2 is archived: promoting it again is 410, and the alias stays on 1.
    assert_problem(promote(client, ci, 2), 410)
    assert alias_map(client) == {"production": 1}


def test_a_form_encoded_promote_is_415_and_moves_nothing(client, ci, four):
    promote_chain(client, ci, 1)
    response = client.post("/models/m/versions/2/promote", data={"alias": "staging"}, headers=ci)
    assert_problem(response, 415, "application/json")
    assert alias_map(client) == {"production": 1}


def test_a_promote_with_an_empty_body_uses_the_defaults(client, ci, four):
    response = client.post("/models/m/versions/2/promote", headers=ci)
    moved(response, 2, None)
    assert alias_map(client) == {"production": 2}


def test_a_version_without_an_example_whose_encoder_knows_only_some_numbers_still_promotes(client, ci):
    frame = pd.DataFrame({"zone": [3, 5, 7, 3, 5, 7] * 5, "size": np.linspace(0.0, 1.0, 30)})
    strict = ColumnTransformer([("zone", OneHotEncoder(handle_unknown="error"), ["zone"])], remainder="passthrough")
    model = Pipeline([("prepare", strict), ("model", LinearRegression())]).fit(frame, frame["size"] * 2)
    upload_ok(client, ci, "zoned", model)  # no input_example: promote makes a row up; zone 0.0 would be unknown
    moved(promote(client, ci, 1, name="zoned"), 1, None, name="zoned")


def test_the_history_says_which_promote_each_rollback_undid(client, ci, four):
    promote_chain(client, ci, 1, 2, 3, 4)
    moved(rollback(client, ci), 3, 4)
    moved(rollback(client, ci, to_version=1), 1, 3)

    history = {e["id"]: e for e in events(client)}
    by_move = {(e["action"], e["from_version"], e["to_version"]): e for e in history.values()}
    undo_of_4 = by_move[("rollback", 4, 3)]
    jump_to_1 = by_move[("rollback", 3, 1)]

    assert undo_of_4["reverts"] == by_move[("promote", 3, 4)]["id"]
    assert jump_to_1["reverts"] == by_move[("promote", 1, 2)]["id"]  # the oldest promote it undid
    assert all(e["reverts"] is None for e in history.values() if e["action"] != "rollback")
