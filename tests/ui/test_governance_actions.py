"""The dashboard changes an alias's policy and decides its approval requests (issue 44), through the same
schema and use cases as the JSON API: its refusals re-show the form with the server's message and change
nothing, the rules (never the requester, never the uploader, the approve right on the model) hold, and the
last approval moves the alias."""
import pytest

from tests.helpers import ADMIN_TOKEN
from tests.ui.conftest import csrf_of, submit
from tests.ui.test_signed_in_people import person, team_model  # noqa: F401  (fixtures)

ALIAS_PAGE = "/ui/models/housing/aliases/production"
EDIT = "/ui/models/housing/aliases/production/policy"
POLICY = "/models/housing/aliases/production/policy"
REQUESTS = "/models/housing/aliases/production/requests"
ASK = "/ui/models/housing/aliases/production/requests/new"
GOOD = {"mover_roles": ["admin", "ci"], "mover_tokens": "autopilot", "approvals": "1",
        "evaluation_dataset": "", "evaluation_metric": "", "evaluation_margin": "0",
        "card": ["intended_use"], "freeze": "2030-12-24T00:00:00Z 2030-12-27T00:00:00Z holidays", "reason": "guard it"}


def token(client, admin, name: str, role: str = "ci") -> str:
    """A fresh token of ``role`` named ``name``, as its secret."""
    response = client.post("/tokens", json={"name": name, "role": role}, headers=admin)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["token"]


def approve_url(request_id: int, what: str = "approve") -> str:
    return f"/ui/models/housing/aliases/production/requests/{request_id}/{what}"


@pytest.fixture
def guarded(client, admin, housing):
    """production of housing protected: one approval, by admin or ci."""
    assert client.put(POLICY, json={"approvals": 1, "reason": "start"}, headers=admin).status_code == 200
    return housing


def test_an_admin_edits_the_policy_from_the_form_and_the_history_says_so(client, admin, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    page = client.get(ALIAS_PAGE).get_data(as_text=True)
    assert "Protect it with a policy…" in page

    response = submit(client, EDIT, **GOOD)

    assert response.status_code == 302, response.get_data(as_text=True)
    stored = client.get(POLICY).get_json()
    assert stored["updated_by"] == "admin"
    assert stored["policy"]["approvals"] == 1 and stored["policy"]["require"] == {"card": ["intended_use"]}
    assert stored["policy"]["movers"] == {"roles": ["admin", "ci"], "tokens": ["autopilot"]}
    assert stored["policy"]["freeze"] == [{"from": "2030-12-24T00:00:00Z", "until": "2030-12-27T00:00:00Z",
                                           "reason": "holidays"}]
    edited = client.get(EDIT).get_data(as_text=True)  # the form starts from what is stored
    assert "2030-12-24T00:00:00Z 2030-12-27T00:00:00Z holidays" in edited and 'checked id="card-1"' in edited
    history = client.get("/models/housing/history?alias=production").get_json()["items"]
    assert (history[0]["action"], history[0]["reason"], history[0]["actor"]) == ("policy_set", "guard it", "admin")
    assert "policy set" in client.get(ALIAS_PAGE).get_data(as_text=True)


@pytest.mark.parametrize("field, value, message", [
    ("approvals", "11", "approvals: Must be greater than or equal to 0 and less than or equal to 10."),
    ("approvals", "two", "approvals: must be a whole number"),
    ("evaluation_dataset", "holdout", "require.evaluation.metric"),
    ("freeze", "2030-12-27T00:00:00Z 2030-12-24T00:00:00Z", "freeze window 0 ends before it starts"),
    ("freeze", "christmas", "must be an ISO 8601 instant"),
    ("mover_roles", [], "nobody could move the alias"),
    ("mover_roles", ["root"], "movers.roles.0: Must be one of"),
    ("mover_tokens", "no spaces allowed", "movers.tokens.0"),
])
def test_a_bad_value_reshows_the_form_with_the_use_cases_message_and_saves_nothing(
        client, admin, housing, sign_in, field, value, message):
    sign_in(ADMIN_TOKEN)
    fields = {**GOOD, field: value, **({"mover_tokens": ""} if field == "mover_roles" else {})}

    response = submit(client, EDIT, **fields)

    assert response.status_code in (400, 422), response.status_code
    text = response.get_data(as_text=True)
    assert message in text and "data-problem" in text and "Nothing was changed" in text
    assert client.get(POLICY).status_code == 404


def test_a_negative_margin_is_refused_by_the_apis_own_schema(client, admin, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    response = submit(client, EDIT, **{**GOOD, "evaluation_dataset": "holdout", "evaluation_metric": "r2",
                                       "evaluation_margin": "-1"})
    assert response.status_code == 422 and "require.evaluation.margin" in response.get_data(as_text=True)
    fine = submit(client, EDIT, **{**GOOD, "evaluation_dataset": "holdout", "evaluation_metric": "r2",
                                   "evaluation_margin": "0.05"})
    assert fine.status_code == 302
    assert client.get(POLICY).get_json()["policy"]["require"]["evaluation"]["margin"] == 0.05


def test_an_admin_removes_the_policy(client, admin, guarded, sign_in):
    sign_in(ADMIN_TOKEN)
    assert "Remove policy…" in client.get(ALIAS_PAGE).get_data(as_text=True)
    assert submit(client, EDIT + "/remove", reason="no longer needed").status_code == 302
    assert client.get(POLICY).status_code == 404
    assert client.get("/models/housing/history?alias=production").get_json()["items"][0]["action"] == "policy_delete"


def test_policy_forms_refuse_anonymous_a_ci_token_and_a_missing_csrf_token(client, admin, guarded, sign_in):
    assert client.get(EDIT).status_code == 302  # anonymous: to the sign-in page
    assert client.post(EDIT, data={**GOOD, "approvals": "3"}).status_code == 302
    sign_in(token(client, admin, "ci-one"))
    assert "Edit policy…" not in client.get(ALIAS_PAGE).get_data(as_text=True)
    refused = client.post(EDIT, data={**GOOD, "approvals": "3", "csrf_token": csrf_of(client.get(ASK))},
                          follow_redirects=True)
    assert "this needs admin" in refused.get_data(as_text=True)
    client.post("/ui/sign-out", data={"csrf_token": csrf_of(client.get("/ui/"))})
    sign_in(ADMIN_TOKEN)
    no_csrf = client.post(EDIT, data={**GOOD, "approvals": "3"})
    assert no_csrf.status_code == 400 and "CSRF" in no_csrf.get_data(as_text=True)
    assert client.get(POLICY).get_json()["policy"]["approvals"] == 1


def test_a_request_opened_from_the_dashboard_is_approved_by_another_person_and_moves_the_alias(
        client, admin, guarded, sign_in):
    releaser = token(client, admin, "releaser")
    sign_in(releaser)
    assert "Request approval…" in client.get(ALIAS_PAGE).get_data(as_text=True)
    opened = submit(client, ASK + "?version=2", version="2", reason="better r2")
    assert opened.status_code == 302, opened.get_data(as_text=True)
    [asked] = client.get(REQUESTS + "?state=open").get_json()["items"]
    assert (asked["requested_by"], asked["version"], asked["reason"]) == ("releaser", 2, "better r2")

    own = submit(client, approve_url(asked["id"]))  # the requester approving their own request
    assert own.status_code == 403
    assert "opened request" in own.get_data(as_text=True) and "another person must" in own.get_data(as_text=True)

    client.post("/ui/sign-out", data={"csrf_token": csrf_of(client.get("/ui/"))})
    sign_in(token(client, admin, "reviewer"))
    page = client.get(ALIAS_PAGE).get_data(as_text=True)
    assert f'data-approve="{asked["id"]}"' in page
    approved = client.post(approve_url(asked["id"]), data={"csrf_token": csrf_of(client.get(ALIAS_PAGE))},
                           follow_redirects=True)
    assert approved.status_code == 200
    assert "moved to version 2" in approved.get_data(as_text=True)
    assert 'data-serving="2"' in approved.get_data(as_text=True)
    assert client.get("/models/housing/aliases").get_json() == {"production": 2}
    done = client.get(f"{REQUESTS}/{asked['id']}").get_json()
    assert done["state"] == "done" and [a["approver"] for a in done["approvals"]] == ["reviewer"]


def test_the_uploader_is_refused_and_a_reject_needs_a_reason(client, admin, guarded, sign_in):
    opened = client.post(REQUESTS, json={"version": 2, "reason": "try"},
                         headers={"Authorization": f"Bearer {token(client, admin, 'releaser')}"})
    request_id = opened.get_json()["id"]
    sign_in(ADMIN_TOKEN)  # the admin uploaded version 2
    uploader = submit(client, approve_url(request_id))
    assert uploader.status_code == 403 and "uploaded version 2" in uploader.get_data(as_text=True)

    no_reason = submit(client, approve_url(request_id, "reject"), reason="")
    assert no_reason.status_code == 400 and "say why" in no_reason.get_data(as_text=True)
    invisible = submit(client, approve_url(request_id, "reject"), reason="\u200b.\u200b")
    assert invisible.status_code == 400 and "8 visible characters" in invisible.get_data(as_text=True)
    assert client.get(f"{REQUESTS}/{request_id}").get_json()["state"] == "open"
    client.post("/ui/sign-out", data={"csrf_token": csrf_of(client.get("/ui/"))})
    sign_in(token(client, admin, "reviewer"))
    rejected = submit(client, approve_url(request_id, "reject"), reason="no evaluation on holdout")
    assert rejected.status_code == 302
    closed = client.get(f"{REQUESTS}/{request_id}").get_json()
    assert (closed["state"], closed["closed_by"], closed["close_reason"]) == (
        "rejected", "reviewer", "no evaluation on holdout")
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}
    again = submit(client, approve_url(request_id))
    assert again.status_code == 409 and "is rejected" in again.get_data(as_text=True)


def test_deciding_needs_a_signed_in_ci_the_approve_right_and_a_csrf_token(
        client, admin, guarded, sign_in, person, team_model):
    request_id = client.post(REQUESTS, json={"version": 2}, headers=admin).get_json()["id"]
    assert client.post(approve_url(request_id)).status_code == 302  # anonymous: to the sign-in page
    person("bob@example.com", "team-a")  # a person whose groups give rights on team-a-* only
    assert client.get(approve_url(request_id)).status_code == 403
    assert "data-approve" not in client.get("/ui/models/team-a-churn/aliases/production").get_data(as_text=True)
    client.post("/ui/sign-out", data={"csrf_token": csrf_of(client.get("/ui/"))})
    sign_in(token(client, admin, "watcher", role="reader"))
    assert "data-approve" not in client.get(ALIAS_PAGE).get_data(as_text=True)
    assert "this needs ci or admin" in client.post(
        approve_url(request_id), data={"csrf_token": csrf_of(client.get("/ui/"))},
        follow_redirects=True).get_data(as_text=True)
    client.post("/ui/sign-out", data={"csrf_token": csrf_of(client.get("/ui/"))})
    sign_in(token(client, admin, "reviewer"))
    assert client.post(approve_url(request_id)).status_code == 400  # no CSRF token
    assert client.get(f"{REQUESTS}/{request_id}").get_json()["approvals"] == []
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_a_promote_refused_for_want_of_approvals_offers_to_ask_for_them(client, admin, guarded, sign_in):
    sign_in(token(client, admin, "releaser"))
    refused = submit(client, "/ui/models/housing/aliases/production/promote", version="2", reason="try")
    assert refused.status_code == 409
    text = refused.get_data(as_text=True)
    assert 'data-missing="approvals"' in text and "data-ask-approval" in text
    assert "/ui/models/housing/aliases/production/requests/new?version=2" in text


def test_asking_for_approval_where_none_is_needed_is_refused_with_the_use_cases_message(client, admin, housing,
                                                                                        sign_in):
    assert client.put(POLICY, json={"approvals": 0, "movers": {"roles": ["admin"]}}, headers=admin).status_code == 200
    sign_in(ADMIN_TOKEN)
    refused = submit(client, ASK, version="2", reason="x")
    assert refused.status_code == 409 and "needs no approval" in refused.get_data(as_text=True)
    assert client.get(REQUESTS).get_json()["items"] == []


def test_a_person_signed_in_as_admin_edits_the_policy_under_their_own_name(client, admin, housing, person):
    person("alice@example.com", "ml-admins")
    assert submit(client, EDIT, **{**GOOD, "mover_groups": "release\nteam-a"}).status_code == 302
    stored = client.get(POLICY).get_json()
    assert stored["updated_by"] == "oidc:alice@example.com"
    assert stored["policy"]["movers"]["groups"] == ["release", "team-a"]
    assert "groups release, team-a" in client.get(ALIAS_PAGE).get_data(as_text=True)


def test_a_last_approval_the_policy_still_refuses_shows_what_is_missing_and_moves_nothing(
        client, admin, housing, sign_in):
    policy = {"approvals": 1, "require": {"card": ["limitations"]}, "reason": "card first"}
    assert client.put(POLICY, json=policy, headers=admin).status_code == 200
    request_id = client.post(REQUESTS, json={"version": 2}, headers=admin).get_json()["id"]
    sign_in(token(client, admin, "reviewer"))

    refused = submit(client, approve_url(request_id))

    assert refused.status_code == 409
    text = refused.get_data(as_text=True)
    assert 'data-missing="card"' in text and "limitations" in text and "Nothing was changed" in text
    assert client.get(f"{REQUESTS}/{request_id}").get_json()["approvals"] == []
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_an_edit_keeps_what_the_form_does_not_show(client, admin, housing, sign_in):
    policy = {"approvals": 1, "request_hours": 12,
              "require": {"evaluation": {"dataset": "holdout", "metric": "loss_ratio", "higher_is_better": True}}}
    assert client.put(POLICY, json=policy, headers=admin).status_code == 200
    sign_in(ADMIN_TOKEN)
    shown = client.get(EDIT).get_data(as_text=True)
    assert 'value="holdout"' in shown and 'value="loss_ratio"' in shown

    edited = submit(client, EDIT, **{**GOOD, "evaluation_dataset": "holdout", "evaluation_metric": "loss_ratio",
                                     "approvals": "2"})

    assert edited.status_code == 302
    stored = client.get(POLICY).get_json()["policy"]
    assert (stored["approvals"], stored["request_hours"]) == (2, 12)
    assert stored["require"]["evaluation"]["higher_is_better"] is True


def test_a_canary_the_policy_refuses_is_refused_in_the_dashboard_too_and_nothing_starts(client, admin, guarded,
                                                                                       sign_in):
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/aliases/production/rollout",
                      canary_version="2", canary_percent="1", reason="a small canary")
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "does not allow this canary" in page and "approvals" in page
    assert client.get("/models/housing/aliases/production/rollout").status_code == 404


GLASS = "/ui/models/housing/aliases/production/break-glass"


def test_an_admin_breaks_the_glass_from_the_dashboard_with_a_reason_and_the_history_says_so(
        client, admin, guarded, sign_in):
    frozen = {"approvals": 1, "freeze": [{"from": "2000-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z"}],
              "reason": "year-end"}
    assert client.put(POLICY, json=frozen, headers=admin).status_code == 200
    sign_in(ADMIN_TOKEN)
    assert "data-break-glass" in client.get(ALIAS_PAGE).get_data(as_text=True)

    for reason in ("", "  ok  \u200b"):  # no reason, and one of too few visible characters: nothing moves
        refused = submit(client, GLASS, version="2", reason=reason)
        text = refused.get_data(as_text=True)
        assert refused.status_code == 400 and ("say why" in text or "visible characters" in text), text
        assert client.get("/models/housing/aliases").get_json() == {"production": 1}

    moved = submit(client, GLASS, version="2", reason="outage: v1 answers 500s")

    assert moved.status_code == 302, moved.get_data(as_text=True)
    assert client.get("/models/housing/aliases").get_json() == {"production": 2}
    last = client.get("/models/housing/history?alias=production").get_json()["items"][0]
    assert (last["action"], last["actor"], last["reason"]) == ("break_glass", "admin", "outage: v1 answers 500s")
    assert 'data-broken-glass="production"' in client.get("/ui/models/housing").get_data(as_text=True)


def test_only_an_admin_is_offered_the_glass_and_only_an_admin_may_break_it(client, admin, guarded, sign_in):
    sign_in(token(client, admin, "deployer"))
    assert "data-break-glass" not in client.get(ALIAS_PAGE).get_data(as_text=True)

    refused = client.post(GLASS, data={"version": "2", "reason": "outage: v1 answers 500s"})

    assert refused.status_code == 302  # back, with "this needs admin"; nothing moved
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_a_waiting_request_shows_on_the_model_page_and_a_freeze_hides_what_would_be_refused(
        client, admin, guarded, sign_in):
    opened = client.post(REQUESTS, json={"version": 2, "reason": "v2 is better"}, headers=admin)
    assert opened.status_code == 201, opened.get_json()
    model_page = client.get("/ui/models/housing").get_data(as_text=True)
    assert 'data-waiting="production"' in model_page and "1 approval request waiting" in model_page

    sign_in(token(client, admin, "reviewer"))
    assert f'data-approve="{opened.get_json()["id"]}"' in client.get(ALIAS_PAGE).get_data(as_text=True)
    frozen = {"approvals": 1, "freeze": [{"from": "2000-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z"}],
              "reason": "year-end"}
    assert client.put(POLICY, json=frozen, headers=admin).status_code == 200

    page = client.get(ALIAS_PAGE).get_data(as_text=True)  # its approval, the last, would meet the freeze: 409

    assert "data-frozen" in page and "data-approve" not in page and "Request approval…" not in page
    assert "· frozen" in client.get("/ui/models/housing").get_data(as_text=True)


@pytest.mark.parametrize("role, promote, archive", [("reader", False, False), ("ci", True, False), ("admin", True, True)])
def test_a_version_page_offers_each_role_only_the_actions_it_may_take(client, admin, housing, sign_in, role, promote, archive):
    sign_in(ADMIN_TOKEN if role == "admin" else token(client, admin, f"someone-{role}", role=role))

    page = client.get("/ui/models/housing/versions/2").get_data(as_text=True)

    assert ("Promote…" in page, "Archive…" in page) == (promote, archive)
