"""``GET /models/<name>/policies``: every policy of a model's aliases, read back as ``GET …/policy`` shows each,
and guarded as the other reads of policies (open by default; with REQUIRE_AUTH_FOR_READS a token that holds
``read`` on that model)."""
import pytest

from tests.helpers import assert_problem, scaled_sum, upload_ok

POLICIES = "/models/m/policies"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def token(client, admin, name: str, role: str, scopes=None) -> dict:
    body = {"name": name, "role": role, **({"scopes": scopes} if scopes is not None else {})}
    response = client.post("/tokens", json=body, headers=admin)
    assert response.status_code == 201, response.get_json()
    return bearer(response.get_json()["token"])


def protect(client, admin, model: str, alias: str, **policy):
    response = client.put(f"/models/{model}/aliases/{alias}/policy", json=policy, headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def models(client, admin):
    """Models m and other, one version each."""
    for name in ("m", "other"):
        upload_ok(client, admin, name, scaled_sum(1))


def test_a_model_without_policies_lists_none(client, models):
    response = client.get(POLICIES)

    assert response.status_code == 200
    assert response.get_json() == {"items": [], "total": 0, "page": 1, "per_page": 50}


def test_every_policy_of_the_model_is_listed_by_alias_as_its_own_route_shows_it(client, admin, models):
    protect(client, admin, "m", "staging", movers={"roles": ["admin"]})
    protect(client, admin, "m", "production", approvals=2, freeze=[{"from": "2026-12-24T00:00:00+01:00",
                                                                    "until": "2026-12-27T00:00:00Z"}])
    protect(client, admin, "other", "production", approvals=1)  # another model's: not listed

    listed = client.get(POLICIES).get_json()

    assert [item["alias"] for item in listed["items"]] == ["production", "staging"]
    assert listed["total"] == 2
    for item in listed["items"]:
        assert item == client.get(f"/models/m/aliases/{item['alias']}/policy").get_json()
    assert listed["items"][0]["policy"]["approvals"] == 2


def test_a_lifted_policy_leaves_the_list_and_pages_hold_the_rest(client, admin, models):
    for alias in ("a", "b", "c"):
        protect(client, admin, "m", alias, approvals=1)
    assert client.delete("/models/m/aliases/b/policy", headers=admin).status_code == 204

    first = client.get(POLICIES, query_string={"per_page": 1}).get_json()
    second = client.get(POLICIES, query_string={"per_page": 1, "page": 2}).get_json()

    assert [item["alias"] for item in first["items"] + second["items"]] == ["a", "c"]
    assert first["total"] == second["total"] == 2


def test_a_model_the_registry_lacks_is_404(client):
    assert_problem(client.get("/models/nobody/policies"), 404)


@pytest.mark.parametrize("query", [{"per_page": 0}, {"per_page": 501}, {"page": 0}, {"page": "x"}])
def test_page_arguments_out_of_range_are_refused(client, models, query):
    assert_problem(client.get(POLICIES, query_string=query), 422)


def test_with_reads_closed_only_a_token_that_reads_the_model_lists_its_policies(build_app, client, admin, models):
    protect(client, admin, "m", "production", approvals=1)
    guarded = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()
    reader = token(client, admin, "plain-reader", "reader")
    metrics = token(client, admin, "scraper", "metrics")
    elsewhere = token(client, admin, "other-team", "ci", [{"models": ["other"], "rights": ["read", "promote"]}])
    scoped = token(client, admin, "m-team", "reader", [{"models": ["m"], "rights": ["read"]}])
    predicts = token(client, admin, "m-predicts", "reader", [{"models": ["m"], "rights": ["predict"]}])

    assert_problem(guarded.get(POLICIES), 401)  # anonymous
    assert_problem(guarded.get(POLICIES, headers=bearer("not-a-token")), 401)
    assert_problem(guarded.get(POLICIES, headers=metrics), 403)  # a role that reads nothing but /metrics
    assert_problem(guarded.get(POLICIES, headers=elsewhere), 403)  # scoped to another model
    assert_problem(guarded.get(POLICIES, headers=predicts), 403)  # on this model, without read
    assert guarded.get("/models/other/policies", headers=elsewhere).status_code == 200
    for headers in (reader, scoped, admin):
        response = guarded.get(POLICIES, headers=headers)
        assert response.status_code == 200
        assert [item["alias"] for item in response.get_json()["items"]] == ["production"]
    assert client.get(POLICIES).status_code == 200  # the default deployment keeps reads open
