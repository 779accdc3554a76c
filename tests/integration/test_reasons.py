"""Reasons are text a person wrote: an action whose reason is mandatory (break-glass, a rejection) refuses a
reason with fewer than 8 visible characters, 422 naming the rule, and changes nothing."""
import pytest

from registry.reasons import MIN_VISIBLE, visible_characters
from tests.helpers import assert_problem, scaled_sum, upload_ok

POLICY = "/models/m/aliases/production/policy"
REQUESTS = "/models/m/aliases/production/requests"
NOT_REASONS = ["", ".", "\u200b", "\u200b" * 50, " " * 30, "ok", "\u2028\u3000\ufeff\u00a0", "abc\u200bdef\u200b",
               "\u202e\u2066no\u2069", "\t\n\r\x0b\x0c\x1c"]


@pytest.fixture
def served(client, ci, admin):
    """Model m, versions 1 and 2, production on 1, protected by two approvals."""
    for factor in (1, 2):
        upload_ok(client, ci, "m", scaled_sum(factor))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert client.put(POLICY, json={"approvals": 2}, headers=admin).status_code == 200


@pytest.mark.parametrize("text, count", [("", 0), (".", 1), ("\u200b" * 9, 0), ("a b\u00a0c\u2009d", 4),
                                         ("\ufeffé漢字🙂", 4), ("\u0600abc", 3), ("x\x00y\x7f", 2)])
def test_visible_characters_leave_out_separators_controls_and_formats(text, count):
    assert visible_characters(text) == count


@pytest.mark.parametrize("reason", NOT_REASONS)
def test_break_glass_refuses_a_reason_nobody_wrote(client, admin, served, reason):
    body = assert_problem(client.post("/models/m/aliases/production/break-glass",
                                      json={"version": 2, "reason": reason}, headers=admin), 422)
    assert f"{MIN_VISIBLE} visible characters" in str(body["errors"]["reason"])
    assert client.get("/models/m/aliases").get_json()["production"] == 1


@pytest.mark.parametrize("reason", NOT_REASONS)
def test_a_rejection_refuses_a_reason_nobody_wrote(client, admin, served, reason):
    request = client.post(REQUESTS, json={"version": 2}, headers=admin).get_json()
    reviewer = client.post("/tokens", json={"name": "reviewer", "role": "ci"}, headers=admin).get_json()["token"]
    body = assert_problem(client.post(f"{REQUESTS}/{request['id']}/reject", json={"reason": reason},
                                      headers={"Authorization": f"Bearer {reviewer}"}), 422)
    assert f"{MIN_VISIBLE} visible characters" in str(body["errors"]["reason"])
    assert client.get(f"{REQUESTS}/{request['id']}").get_json()["state"] == "open"


def test_eight_visible_characters_are_a_reason(client, admin, served):
    moved = client.post("/models/m/aliases/production/break-glass",
                        json={"version": 2, "reason": "\u200bv1's NaNs\u200b"}, headers=admin)
    assert moved.status_code == 200, moved.get_json()


def test_the_use_cases_hold_the_rule_for_callers_that_are_not_the_api(app, served):
    from registry.approvals import requests
    from registry.errors import InvalidInput

    with app.app_context():
        request = requests.open_approval_request("m", "production", number=2, reason="", actor="alice", owner="alice",
                                                  role="ci")
        with pytest.raises(InvalidInput, match="8 visible characters"):
            requests.reject("m", "production", request_id=request.id, reason="\u200b.", actor="bob",
                            owner="bob")


# A terminal escape that clears the screen and writes a line of its own, a backspace that hides what came before,
# a C1 control: each would rewrite what a terminal or a log shows of the history.
CONTROLS = ["v2 fixes NaNs\x1b[2J\x1b[Hrolled back by alice", "looks good\x08\x08\x08\x08bad!", "release\x85notes"]


@pytest.mark.parametrize("reason", CONTROLS)
def test_break_glass_refuses_a_reason_with_control_characters(client, admin, served, reason):
    body = assert_problem(client.post("/models/m/aliases/production/break-glass",
                                      json={"version": 2, "reason": reason}, headers=admin), 422)
    assert "no control characters" in str(body["errors"]["reason"])
    assert client.get("/models/m/aliases").get_json()["production"] == 1


@pytest.mark.parametrize("reason", CONTROLS)
def test_every_optional_reason_refuses_control_characters_and_nothing_changes(client, admin, ci, reason):
    upload_ok(client, ci, "m", scaled_sum(1))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    history = client.get("/models/m/history").get_json()
    refused = [
        client.post("/models/m/versions/1/promote", json={"alias": "staging", "reason": reason}, headers=ci),
        client.post("/models/m/rollback", json={"reason": reason}, headers=ci),
        client.patch("/models/m", json={"description": "x", "reason": reason}, headers=admin),
        client.patch("/models/m/versions/1", json={"description": "x", "reason": reason}, headers=admin),
        client.put(POLICY, json={"approvals": 1, "reason": reason}, headers=admin),
        client.post("/tokens", json={"name": "t", "role": "reader", "reason": reason}, headers=admin),
        client.delete("/models/m/aliases/production", query_string={"reason": reason}, headers=admin),
    ]
    for answer in refused:
        body = assert_problem(answer, 422)
        assert "no control characters" in str(body["errors"]), body
    assert client.get("/models/m/aliases").get_json() == {"production": 1}
    assert client.get("/models/m/history").get_json() == history
    assert client.get("/models/m").get_json()["description"] == ""
    assert client.get("/models/m/aliases/production/policy").status_code == 404
    assert "t" not in [token["name"] for token in client.get("/tokens", headers=admin).get_json()["items"]]


def test_tabs_and_line_breaks_are_text(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    reason = "first release\n\t- NaNs fixed\r\n\t- faster"
    assert client.post("/models/m/versions/1/promote", json={"reason": reason}, headers=ci).status_code == 200
    assert client.get("/models/m/history").get_json()["items"][0]["reason"] == reason
