"""People signed in through single sign-on (issue 44): their session is kept server-side like a token's,
their groups' role and scopes bound every dashboard action, and an alias's policy lets its ``movers.groups``
move it, while a token is in no group. The sign-in through a real provider is tested end to end in
tests/e2e/test_dashboard_oidc.py; here the session is opened as its callback opens it."""
from datetime import timedelta

import pytest

from registry.access.sessions import start_person_session
from registry.access.sign_on import Person, group_rules, principal_of
from tests.helpers import scaled_sum, upload_ok
from tests.ui.conftest import submit

POLICY = "/models/housing/aliases/production/policy"
RULES = group_rules('{"ml-admins": {"role": "admin"}, "release": {"role": "ci"}, '
                   '"team-a": {"role": "ci", "scopes": [{"models": ["team-a-*"], "rights": ["read", "promote"]}]}}')


@pytest.fixture
def person(app, client):
    """``person(email, *groups)``: sign the test client in as that person, as the provider's callback does."""

    def sign(email, *groups):
        who = principal_of(Person(sub=email.split("@")[0], email=email, name=None, groups=groups), RULES)
        with app.app_context():
            session_id = start_person_session(who, lifetime=timedelta(hours=1), sub=who.name, email=email)
        with client.session_transaction() as cookie:
            cookie["session_id"] = session_id
        return who

    return sign


@pytest.fixture
def team_model(client, admin):
    """``team-a-churn`` with two versions, v1 in production."""
    for factor in (1.0, 2.0):
        upload_ok(client, admin, "team-a-churn", scaled_sum(factor), {"metrics": {"r2": factor / 4}})
    assert client.post("/models/team-a-churn/versions/1/promote", json={}, headers=admin).status_code == 200
    return "team-a-churn"


def test_a_policy_may_name_groups_alone_and_shows_them(client, admin, housing):
    response = client.put(POLICY, json={"movers": {"roles": [], "groups": ["release"]}}, headers=admin)
    assert response.status_code == 200, response.get_json()
    assert client.get(POLICY, headers=admin).get_json()["policy"]["movers"] == {
        "roles": [], "tokens": [], "groups": ["release"]}


def test_a_token_is_in_no_group_and_meets_the_409_with_the_movers_missing(client, admin, ci, housing):
    assert client.put(POLICY, json={"movers": {"roles": ["admin"], "groups": ["ci", "release"]}},
                      headers=admin).status_code == 200

    refused = client.post("/models/housing/versions/2/promote", json={}, headers=ci)

    assert refused.status_code == 409
    assert [item["rule"] for item in refused.get_json()["missing"]] == ["movers"]
    assert "groups ['ci', 'release']" in refused.get_json()["missing"][0]["detail"]
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_a_person_in_a_listed_group_promotes_from_the_dashboard_under_their_own_name(client, admin, housing, person):
    assert client.put(POLICY, json={"movers": {"roles": ["admin"], "groups": ["release"]}},
                      headers=admin).status_code == 200
    person("rel@example.com", "release")

    moved = submit(client, "/ui/models/housing/versions/2/promote?alias=production", alias="production",
                   reason="the release team's call")

    assert moved.status_code == 302, moved.get_data(as_text=True)
    assert client.get("/models/housing/aliases").get_json() == {"production": 2}
    latest = client.get("/models/housing/history", headers=admin).get_json()["items"][0]
    assert latest["actor"] == "oidc:rel@example.com" and latest["reason"] == "the release team's call"


def test_a_person_of_the_right_role_outside_the_listed_groups_meets_the_409(client, admin, housing, person):
    assert client.put(POLICY, json={"movers": {"roles": ["admin"], "groups": ["other-team"]}},
                      headers=admin).status_code == 200
    person("rel@example.com", "release")

    refused = submit(client, "/ui/models/housing/versions/2/promote?alias=production", alias="production", reason="x")

    assert refused.status_code == 409
    assert "movers missing" in refused.get_data(as_text=True)
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_a_scoped_person_sees_and_moves_their_models_only(client, admin, housing, team_model, person):
    person("bob@example.com", "team-a")

    listing = client.get("/ui/").get_data(as_text=True)
    assert 'data-model="team-a-churn"' in listing and 'data-model="housing"' not in listing
    assert client.get("/ui/models/housing").status_code == 403
    refused = submit(client, "/ui/models/team-a-churn/versions/2/promote?alias=production", alias="production",
                     reason="ours")
    assert refused.status_code == 302
    assert client.get("/models/team-a-churn/aliases").get_json() == {"production": 2}
    assert client.get("/ui/models/housing/versions/2/promote?alias=production").status_code == 403
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_the_first_mapped_group_decides_and_an_admin_group_wins_when_listed_first(person):
    assert person("alice@example.com", "team-a", "ml-admins").role == "admin"
    bob = person("bob@example.com", "team-a", "unmapped")
    assert (bob.role, bob.scopes is not None, bob.groups) == ("ci", True, ("team-a", "unmapped"))


def test_sign_out_ends_the_session_for_every_copy_of_its_cookie(app, client, housing, person):
    person("rel@example.com", "release")
    with client.session_transaction() as cookie:
        copied = cookie["session_id"]
    assert "Signed in as <strong>oidc:rel@example.com</strong>" in client.get("/ui/").get_data(as_text=True)

    signed_out = client.post("/ui/sign-out", data={"csrf_token": _csrf(client)})
    assert signed_out.status_code == 302

    with client.session_transaction() as cookie:
        cookie["session_id"] = copied
    assert "Signed in as" not in client.get("/ui/").get_data(as_text=True)
    assert client.get("/ui/models/housing/versions/2/promote").status_code == 302  # to the sign-in page


def test_an_approver_who_opened_the_request_is_refused_by_name_whether_token_or_person(app):
    from types import SimpleNamespace

    from registry.errors import Forbidden
    from registry.governance.requests import check_approver

    request = SimpleNamespace(id=1, number=2, requested_by="oidc:alice@example.com", approvals=[],
                              requester_owner="oidc:alice@example.com", version=SimpleNamespace(created_by="ci-test"))
    with app.app_context():  # the uploader's owner is read from the tokens
        with pytest.raises(Forbidden):
            check_approver(request, "oidc:alice@example.com", "oidc:alice@example.com")
        check_approver(request, "oidc:bob@example.com", "oidc:bob@example.com")  # another person may
        check_approver(request, "alice", "alice")  # a token named like her is not her


def _csrf(client) -> str:
    from tests.ui.conftest import csrf_of
    return csrf_of(client.get("/ui/"))


def test_a_person_who_may_move_through_a_group_alone_asks_for_approval_and_the_last_approval_moves_as_them(
        client, admin, ci, housing, person):
    assert client.put(POLICY, json={"movers": {"roles": ["admin"], "groups": ["release"]}, "approvals": 1},
                      headers=admin).status_code == 200
    person("rel@example.com", "release")  # a ci person: the group, not the role, makes them a mover

    opened = submit(client, "/ui/models/housing/aliases/production/requests/new?version=2", version="2",
                    reason="the release team asks")
    assert opened.status_code == 302, opened.get_data(as_text=True)
    [asked] = client.get("/models/housing/aliases/production/requests?state=open", headers=admin).get_json()["items"]
    assert asked["requested_by"] == "oidc:rel@example.com"

    approved = client.post(f"/models/housing/aliases/production/requests/{asked['id']}/approve",
                           json={"reason": "looks right"}, headers=ci)

    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["state"] == "done"
    assert client.get("/models/housing/aliases").get_json() == {"production": 2}
    latest = client.get("/models/housing/history", headers=admin).get_json()["items"][0]
    assert latest["actor"] == "oidc:rel@example.com"


def test_a_request_from_outside_the_policys_groups_is_refused_naming_them(client, admin, housing, person):
    assert client.put(POLICY, json={"movers": {"roles": ["admin"], "groups": ["other-team"]}, "approvals": 1},
                      headers=admin).status_code == 200
    person("rel@example.com", "release")

    refused = submit(client, "/ui/models/housing/aliases/production/requests/new?version=2", version="2",
                     reason="not ours to ask")

    assert refused.status_code in (403, 409)
    assert "groups [&#39;other-team&#39;]" in refused.get_data(as_text=True)
    assert client.get("/models/housing/aliases/production/requests", headers=admin).get_json()["items"] == []
