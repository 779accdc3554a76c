"""The dashboard shows a protected alias's policy and open requests, and a broken glass loudly; its own
moves meet the policy as the API's do."""

from tests.helpers import ADMIN_TOKEN
from tests.ui.conftest import submit

POLICY = "/models/housing/aliases/production/policy"


def test_an_unprotected_alias_says_so(client, housing):
    page = client.get("/ui/models/housing/aliases/production").get_data(as_text=True)
    assert "Not protected" in page and "data-protected" not in client.get("/ui/models/housing").get_data(as_text=True)


def test_the_alias_page_shows_the_policy_and_each_open_request_with_what_it_lacks(client, admin, housing):
    policy = {"approvals": 2, "require": {"card": ["intended_use"]}, "movers": {"roles": ["admin"], "tokens": []},
              "freeze": [{"from": "2030-12-24T00:00:00Z", "until": "2030-12-27T00:00:00Z", "reason": "holidays"}]}
    assert client.put(POLICY, json=policy, headers=admin).status_code == 200
    opened = client.post("/models/housing/aliases/production/requests", json={"version": 2, "reason": "better r2"},
                         headers=admin)
    assert opened.status_code == 201, opened.get_json()
    page = client.get("/ui/models/housing/aliases/production").get_data(as_text=True)
    assert 'data-approvals="2"' in page and "holidays" in page and "model card: intended_use" in page
    assert f'data-request="{opened.get_json()["id"]}"' in page and "better r2" in page
    assert 'data-missing="card"' in page and 'data-missing="approvals"' in page
    assert 'data-evidence="card"' in page and "intended use: —" in page
    assert "<dd>model card: intended_use</dd>" in page  # the evidence listed without a trailing separator
    assert 'data-protected="production"' in client.get("/ui/models/housing").get_data(as_text=True)
    history = client.get("/ui/models/housing/history").get_data(as_text=True)
    assert "policy set" in history and "request open" in history
    # the alias page's last moves say "request" once: the event's kind, then which request
    assert f'request open #{opened.get_json()["id"]} for v2 by admin' in " ".join(page.split())
    assert "2 approvals, 1 freeze window" in " ".join(history.split())


def test_the_history_counts_one_approval_in_the_singular(client, admin, housing):
    assert client.put(POLICY, json={"approvals": 1}, headers=admin).status_code == 200
    history = " ".join(client.get("/ui/models/housing/history").get_data(as_text=True).split())
    assert ": 1 approval" in history and "1 approvals" not in history


def test_a_broken_glass_is_a_banner_until_the_alias_moves_again(client, admin, housing):
    assert client.put(POLICY, json={"approvals": 1}, headers=admin).status_code == 200
    moved = client.post("/models/housing/aliases/production/break-glass",
                        json={"version": 2, "reason": "v1 answers NaN"}, headers=admin)
    assert moved.status_code == 200, moved.get_json()
    for url in ("/ui/models/housing", "/ui/models/housing/aliases/production"):
        page = client.get(url).get_data(as_text=True)
        assert 'data-broken-glass="production"' in page and "v1 answers NaN" in page and 'role="alert"' in page
    assert client.delete(POLICY, headers=admin).status_code == 204
    assert client.post("/models/housing/versions/1/promote", json={}, headers=admin).status_code == 200
    assert "data-broken-glass" not in client.get("/ui/models/housing").get_data(as_text=True)


def test_a_promote_from_the_dashboard_meets_the_policy_as_the_apis_does(client, admin, housing, sign_in):
    assert client.put(POLICY, json={"approvals": 1}, headers=admin).status_code == 200
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/versions/2/promote?alias=production", alias="production",
                      reason="try")
    assert response.status_code == 409
    assert "approvals missing" in response.get_data(as_text=True)
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_the_policy_lists_every_kind_of_evidence_it_asks_for(client, admin, housing):
    policy = {"approvals": 0, "require": {"evaluation": {"dataset": "holdout", "metric": "r2", "margin": 0.01},
                                          "card": ["intended_use", "limitations"], "compatible_signature": True,
                                          "rollout": True}}
    assert client.put(POLICY, json=policy, headers=admin).status_code == 200, client.get(POLICY).get_json()
    page = " ".join(client.get("/ui/models/housing/aliases/production").get_data(as_text=True).split())
    assert ("<dd>evaluation on holdout: r2 at least 0.01 better than the served version; model card: intended_use, "
            "limitations; a compatible signature; a rollout plan walked to its end</dd>") in page


def test_a_policys_evidence_is_shown_as_text_never_as_markup(client, admin, housing):
    policy = {"approvals": 0, "require": {"evaluation": {"dataset": "<script>alert(1)</script>", "metric": "r2",
                                                         "margin": 0.01}}}
    assert client.put(POLICY, json=policy, headers=admin).status_code == 200, client.get(POLICY).get_json()
    page = client.get("/ui/models/housing/aliases/production").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "evaluation on &lt;script&gt;alert(1)&lt;/script&gt;: r2 at least 0.01" in " ".join(page.split())


def test_the_history_counts_policy_and_request_entries_as_recorded_changes_not_moves(client, admin, housing):
    """Issue 68, item 8: the pager said "8 alias moves" over entries mostly policy and approval events."""
    assert client.put(POLICY, json={"approvals": 1}, headers=admin).status_code == 200
    assert client.post("/models/housing/aliases/production/requests", json={"version": 2, "reason": "better r2"},
                       headers=admin).status_code == 201
    history = " ".join(client.get("/ui/models/housing/history").get_data(as_text=True).split())
    assert "page 1 of 1 · 3 recorded changes<" in history  # the promote, the policy, the request
    assert "alias move" not in history
