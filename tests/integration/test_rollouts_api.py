"""Rollouts through the HTTP API: state, history, bad input, and what they do to the alias and archive."""
import pytest
from sklearn.linear_model import LinearRegression

from tests.helpers import PROBE_ROW, assert_problem, regression_data, scaled_sum, upload_ok

URL = "/models/m/aliases/production/rollout"


@pytest.fixture
def model(client, ci):
    """Model ``m`` with versions 1..3 (k·sum of three features); production on 1."""
    for factor in (1, 2, 3):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    return "m"


def start(client, headers, url=URL, **body):
    return client.put(url, json=body, headers=headers)


def history(client, alias="production") -> list[dict]:
    return client.get(f"/models/m/history?alias={alias}").get_json()["items"]


def predict(client, key=None, ref="production"):
    headers = {"X-User-Id": key} if key is not None else {}
    response = client.post(f"/models/m/{ref}/predict", json={"instances": [PROBE_ROW]}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response


def test_starting_a_canary_answers_its_state_and_records_the_start(client, ci, model):
    response = start(client, ci, canary={"version": 2, "percent": 10}, shadow={"version": 3, "percent": 50},
                     sticky_header="X-User-Id", reason="try v2")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["model"], body["alias"], body["sticky_header"], body["reason"]) == ("m", "production", "X-User-Id", "try v2")
    assert body["started_by"] == "ci-test" and body["started_at"].endswith("Z") and body["ended_at"] is None
    assert body["primary"] == {"version": 1, "requests": 0, "errors": 0, "refused": 0, "keys": 0, "p50_ms": None,
                               "p99_ms": None}
    assert body["canary"]["version"] == 2 and body["canary"]["percent"] == 10
    assert body["shadow"] == {"version": 3, "percent": 50, "compared": 0, "dropped": 0, "errors": 0,
                              "mean_abs_diff": None, "max_abs_diff": None}
    assert client.get(URL).get_json() == body
    event = history(client)[0]
    assert (event["action"], event["from_version"], event["to_version"], event["reason"]) == ("rollout_start", 1, 1, "try v2")
    assert event["details"]["canary"] == {"version": 2, "percent": 10}
    assert event["details"]["shadow"] == {"version": 3, "percent": 50}
    assert client.get("/models/m/aliases").get_json() == {"production": 1}


def test_changing_a_rollout_records_a_change_and_an_identical_request_records_nothing(client, ci, model):
    start(client, ci, canary={"version": 2, "percent": 10})
    changed = start(client, ci, canary={"version": 2, "percent": 30}, reason="more")
    assert changed.status_code == 200 and changed.get_json()["canary"]["percent"] == 30
    again = start(client, ci, canary={"version": 2, "percent": 30})
    assert again.status_code == 200
    assert [e["action"] for e in history(client)] == ["rollout_change", "rollout_start", "promote"]
    assert history(client)[0]["details"]["canary"] == {"version": 2, "percent": 30}


def test_a_change_can_swap_the_canary_for_a_shadow(client, ci, model):
    start(client, ci, canary={"version": 2, "percent": 10})
    body = start(client, ci, shadow={"version": 3, "percent": 100}).get_json()
    assert body["canary"] is None and body["shadow"]["version"] == 3
    assert predict(client).headers["X-Model-Route"] == "primary"


def test_no_rollout_is_404(client, model):
    assert_problem(client.get(URL), 404, "no rollout")
    assert_problem(client.get("/models/nope/aliases/production/rollout"), 404, "nope")


def test_aborting_sends_all_traffic_back_to_the_primary_and_is_recorded(client, ci, model):
    start(client, ci, canary={"version": 2, "percent": 100})
    assert predict(client).get_json()["version"] == 2
    aborted = client.delete(URL, json={"reason": "bad canary"}, headers=ci)
    assert aborted.status_code == 200 and aborted.get_json()["ended_at"] is not None
    assert aborted.get_json()["canary"]["requests"] == 1
    assert_problem(client.get(URL), 404)
    answer = predict(client)
    assert (answer.get_json()["version"], answer.headers["X-Model-Route"]) == (1, "primary")
    event = history(client)[0]
    assert (event["action"], event["reason"], event["to_version"]) == ("rollout_abort", "bad canary", 1)
    assert_problem(client.delete(URL, headers=ci), 404)


def test_changing_a_rollout_answers_the_figures_so_far_and_keeps_them(client, ci, model):
    start(client, ci, canary={"version": 2, "percent": 50})
    for _ in range(6):
        predict(client)
    changed = start(client, ci, canary={"version": 2, "percent": 20}, reason="less").get_json()
    assert changed["primary"]["requests"] + changed["canary"]["requests"] == 6
    kept = client.get(URL).get_json()
    assert (kept["primary"], kept["canary"]) == (changed["primary"], changed["canary"])


def test_completing_promotes_the_canary_with_the_figures_in_its_event(client, ci, model):
    start(client, ci, canary={"version": 2, "percent": 100})
    for _ in range(3):
        predict(client)
    completed = client.post(f"{URL}/promote", json={"reason": "looks good"}, headers=ci)
    assert completed.status_code == 200, completed.get_json()
    body = completed.get_json()
    assert (body["model"], body["alias"], body["version"], body["previous_version"]) == ("m", "production", 2, 1)
    event = history(client)[0]
    assert (event["id"], event["action"], event["from_version"], event["to_version"]) == (body["event_id"], "rollout_promote", 1, 2)
    assert event["details"]["figures"]["canary"]["requests"] == 3
    assert client.get("/models/m/aliases").get_json() == {"production": 2}
    assert_problem(client.get(URL), 404)
    answer = predict(client)
    assert (answer.get_json()["version"], answer.headers["X-Model-Route"]) == (2, "primary")


def test_a_completed_rollout_can_be_rolled_back_like_a_promote(client, ci, model):
    start(client, ci, canary={"version": 2, "percent": 10})
    assert client.post(f"{URL}/promote", headers=ci).status_code == 200
    rolled = client.post("/models/m/rollback", json={}, headers=ci)
    assert rolled.status_code == 200 and rolled.get_json()["version"] == 1


def test_completing_a_shadow_only_rollout_is_a_conflict(client, ci, model):
    start(client, ci, shadow={"version": 3, "percent": 10})
    assert_problem(client.post(f"{URL}/promote", headers=ci), 409, "no canary", "abort")
    assert client.get(URL).status_code == 200


@pytest.mark.parametrize("action", ["promote", "rollback"])
def test_moving_the_alias_ends_its_rollout_and_records_the_end(client, ci, model, action):
    assert client.post("/models/m/versions/3/promote", json={}, headers=ci).status_code == 200
    start(client, ci, canary={"version": 2, "percent": 50})
    if action == "promote":
        moved = client.post("/models/m/versions/1/promote", json={}, headers=ci)
    else:
        moved = client.post("/models/m/rollback", json={}, headers=ci)
    assert moved.status_code == 200
    assert_problem(client.get(URL), 404)
    actions = [e["action"] for e in history(client)]
    assert actions[:2] == [action, "rollout_abort"]
    assert history(client)[1]["details"]["ended_by"] == action
    assert {predict(client, key=f"k{i}").headers["X-Model-Route"] for i in range(20)} == {"primary"}


def test_a_version_in_an_active_rollout_cannot_be_archived_until_it_ends(client, ci, admin, model):
    start(client, ci, canary={"version": 2, "percent": 10}, shadow={"version": 3, "percent": 10})
    assert_problem(client.delete("/models/m/versions/2", headers=admin), 409, "rollout", "production")
    assert_problem(client.delete("/models/m/versions/3", headers=admin), 409, "rollout")
    assert client.delete(URL, headers=ci).status_code == 200
    assert client.delete("/models/m/versions/2", headers=admin).status_code == 200


def test_keyed_requests_keep_their_version_and_the_canary_takes_its_share(client, ci, model):
    start(client, ci, canary={"version": 2, "percent": 20}, sticky_header="X-User-Id")
    first = {}
    for i in range(400):
        answer = predict(client, key=f"user-{i}")
        body = answer.get_json()
        assert answer.headers["X-Model-Version"] == str(body["version"])
        assert answer.headers["X-Model-Route"] == ("canary" if body["version"] == 2 else "primary")
        assert body["predictions"] == [pytest.approx(3.0 * body["version"])]
        first[f"user-{i}"] = body["version"]
    assert 0.15 <= sum(v == 2 for v in first.values()) / len(first) <= 0.25
    for key in list(first)[:50]:
        assert predict(client, key=key).get_json()["version"] == first[key]


def test_pinned_versions_are_never_routed(client, ci, model):
    start(client, ci, canary={"version": 2, "percent": 100})
    for ref in ("1", "3"):
        answer = predict(client, ref=ref)
        assert answer.get_json()["version"] == int(ref) and "X-Model-Route" not in answer.headers
    assert predict(client, ref="production").headers["X-Model-Route"] == "canary"
    assert predict(client, ref="latest").get_json()["version"] == 3


def test_the_default_predict_route_follows_the_production_rollout(client, ci, model):
    start(client, ci, canary={"version": 2, "percent": 100})
    answer = client.post("/models/m/predict", json={"instances": [PROBE_ROW]})
    assert (answer.get_json()["version"], answer.headers["X-Model-Route"]) == (2, "canary")


# -- bad input: a clear 4xx and nothing changes ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"canary": {"version": 2, "percent": 0}}, 422, "canary.percent"),
        ({"canary": {"version": 2, "percent": -5}}, 422, "canary.percent"),
        ({"canary": {"version": 2, "percent": 100.5}}, 422, "canary.percent"),
        ({"canary": {"version": 2, "percent": "10"}}, 422, "canary.percent"),
        ({"canary": {"version": 2}}, 422, "canary.percent"),
        ({"shadow": {"version": 3, "percent": 101}}, 422, "shadow.percent"),
        ({"canary": {"version": 9, "percent": 10}}, 422, "no version 9"),
        ({"canary": {"version": 1, "percent": 10}}, 422, "primary version"),
        ({"shadow": {"version": 1, "percent": 10}}, 422, "primary version"),
        ({"canary": {"version": 2, "percent": 10}, "sticky_header": "X User"}, 422, "valid header name"),
        ({"canary": {"version": 2, "percent": 10}, "sticky_header": ""}, 422, "valid header name"),
        ({"canary": {"version": 2, "percent": 10}, "sticky_header": "X-User:Id"}, 422, "valid header name"),
        ({}, 422, "canary, a shadow or both"),
        ({"canary": None, "shadow": None}, 422, "canary, a shadow or both"),
        ({"canary": {"version": 2, "percent": 10}, "weights": 3}, 422, "weights"),
    ],
)
def test_bad_rollout_requests_are_refused_and_change_nothing(client, ci, model, body, status, fragment):
    before = history(client)
    assert_problem(start(client, ci, **body), status, fragment)
    assert_problem(client.get(URL), 404)
    assert history(client) == before


def test_a_rollout_with_an_archived_version_is_410(client, ci, admin, model):
    assert client.delete("/models/m/versions/3", headers=admin).status_code == 200
    assert_problem(start(client, ci, shadow={"version": 3, "percent": 10}), 410, "archived")
    assert_problem(client.get(URL), 404)


def test_a_rollout_on_an_alias_that_does_not_exist_is_409(client, ci, model):
    response = start(client, ci, url="/models/m/aliases/staging/rollout", canary={"version": 2, "percent": 10})
    assert_problem(response, 409, "staging", "promote")
    assert_problem(start(client, ci, url="/models/m/aliases/latest/rollout", canary={"version": 2, "percent": 10}), 422)
    assert_problem(start(client, ci, url="/models/nope/aliases/production/rollout", canary={"version": 2, "percent": 10}), 404)


def test_an_incompatible_canary_needs_force_which_the_history_records(client, ci, model):
    X, y = regression_data(n_features=4)
    wider = upload_ok(client, ci, "m", LinearRegression().fit(X, y))
    refused = start(client, ci, canary={"version": wider, "percent": 10})
    assert_problem(refused, 422, "incompatible", "force")
    assert_problem(client.get(URL), 404)
    forced = start(client, ci, canary={"version": wider, "percent": 10}, force=True)
    assert forced.status_code == 200
    assert history(client)[0]["forced"] is True


def test_rollout_changes_need_a_ci_or_admin_token(client, ci, model):
    body = {"canary": {"version": 2, "percent": 10}}
    assert_problem(client.put(URL, json=body), 401)
    assert_problem(client.delete(URL), 401)
    assert_problem(client.post(f"{URL}/promote"), 401)
    assert_problem(client.put(URL, data="canary", headers={**ci, "Content-Type": "text/plain"}), 415)
