"""The dashboard's actions check roles, not a token's models: a token scoped to some models (issue 44)
cannot sign in to it, and is told why; an unscoped one still can."""
from tests.helpers import ADMIN_TOKEN
from tests.ui.conftest import submit


def test_the_dashboard_refuses_a_scoped_token_at_sign_in_and_says_why(client, admin):
    created = client.post("/tokens", json={"name": "scoped", "role": "ci",
                                           "scopes": [{"models": ["in-*"], "rights": ["read", "promote"]}]},
                          headers=admin)
    assert created.status_code == 201, created.get_json()

    refused = submit(client, "/ui/sign-in", token=created.get_json()["token"])

    assert refused.status_code == 400 and "takes unscoped tokens only" in refused.get_data(as_text=True)
    assert submit(client, "/ui/sign-in", token=ADMIN_TOKEN).status_code == 302


def test_the_dashboard_refuses_a_metrics_token_at_sign_in_it_only_scrapes(client, admin):
    created = client.post("/tokens", json={"name": "prometheus", "role": "metrics"}, headers=admin)
    assert created.status_code == 201, created.get_json()

    refused = submit(client, "/ui/sign-in", token=created.get_json()["token"])

    assert refused.status_code == 400 and "it may scrape /metrics, nothing else" in refused.get_data(as_text=True)
