"""Per-model access (issue 44): a token scoped to some models holds, on each, the rights its grants
name (within its role's), and none on any other model. Every route of a model, of the JSON API and of
V2, is tried with a token of each right, in and out of its scope, with reads closed
(REQUIRE_AUTH_FOR_READS): out of scope is always 403 (the scope's, or the role's before it); in
scope, the route's own right passes the scope, any other right is 403."""
import pytest

from api.prediction_routes import url_map
from api.rights import ROUTE_RIGHTS
from registry.access.scopes import RIGHTS
from tests.helpers import assert_problem, scaled_sum, upload_ok

# The least role that holds each right.
ROLE_OF = {"read": "reader", "predict": "reader", "upload": "ci", "promote": "ci", "approve": "ci",
           "read_inputs": "analyst", "feedback": "feedback"}
URL_VALUES = {"alias": "production", "ref": "1", "number": 1, "request_id": 1, "version": "1"}


@pytest.fixture
def app(build_app):
    return build_app(REQUIRE_AUTH_FOR_READS=True)


@pytest.fixture
def models(client, admin):
    for name in ("in-a", "out-a"):
        upload_ok(client, admin, name, scaled_sum(1))
        assert client.post(f"/models/{name}/versions/1/promote", json={}, headers=admin).status_code == 200


def token(client, admin, name: str, role: str, scopes) -> dict:
    created = client.post("/tokens", json={"name": name, "role": role, "scopes": scopes}, headers=admin)
    assert created.status_code == 201, created.get_json()
    return {"Authorization": f"Bearer {created.get_json()['token']}"}


def model_routes(app) -> dict[tuple[str, str], str]:
    """(endpoint, method) -> a URL template of every route of the JSON API and V2 that names a model: Flask's, and
    the prediction routes' (answered by api/fast_predict.py)."""
    routes = {}
    for rule in (*app.url_map.iter_rules(), *url_map(app.url_map.converters).iter_rules()):
        if "name" not in rule.arguments or not rule.rule.startswith(("/models/", "/v2/models/")):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes[(rule.endpoint, method)] = rule
    return routes


def url_for(app, rule, model: str) -> str:
    with app.test_request_context():
        return rule.build({"name": model, **{k: v for k, v in URL_VALUES.items() if k in rule.arguments}})[1]


def test_every_route_of_a_model_names_the_right_it_needs(app):
    assert set(model_routes(app)) == set(ROUTE_RIGHTS)


@pytest.mark.parametrize("right", RIGHTS)
def test_a_scoped_token_acts_with_its_right_on_its_models_only(app, client, admin, models, right):
    headers = token(client, admin, f"scoped-{right.replace('_', '-')}", ROLE_OF[right],
                    [{"models": ["in-*"], "rights": [right]}])
    wrong = []
    for (endpoint, method), rule in sorted(model_routes(app).items()):
        for model in ("out-a", "in-a"):
            response = client.open(url_for(app, rule, model), method=method, headers=headers,
                                   **({} if method == "GET" else {"json": {}}))
            detail = (response.get_json(silent=True) or {}).get("detail") or ""
            refused_by_scope = response.status_code == 403 and "is scoped" in detail
            needed = ROUTE_RIGHTS[(endpoint, method)]
            if model == "out-a" and response.status_code != 403:  # by the scope, or by the role before it
                wrong.append(f"{method} {rule.rule} out of scope: {response.status_code} {detail[:80]}")
            elif model == "in-a" and needed == right and (refused_by_scope or response.status_code == 401):
                wrong.append(f"{method} {rule.rule} in scope with {right}: {response.status_code} {detail[:80]}")
            elif model == "in-a" and needed != right and not refused_by_scope and response.status_code < 500:
                if response.status_code != 403:  # a role's refusal is as good
                    wrong.append(f"{method} {rule.rule} in scope without {needed}: {response.status_code}")
    assert not wrong, "\n".join(wrong)


def test_a_grant_of_several_rights_and_patterns_holds_them_all(client, admin, models):
    headers = token(client, admin, "team", "ci", [{"models": ["in-a"], "rights": ["read", "predict", "promote"]},
                                                  {"models": ["other-*"], "rights": ["upload"]}])

    assert client.get("/models/in-a", headers=headers).status_code == 200
    assert client.post("/models/in-a/production/predict", json={"instances": [[1, 2, 3]]},
                       headers=headers).status_code == 200
    assert client.post("/models/in-a/versions/1/promote", json={"alias": "staging"}, headers=headers).status_code == 200
    assert_problem(upload_response(client, headers, "in-a"), 403, "no right 'upload' on the model 'in-a'")
    assert upload_response(client, headers, "other-b").status_code == 201


def upload_response(client, headers, name):
    from tests.helpers import upload
    return upload(client, headers, name, scaled_sum(2))


def test_a_scoped_token_lists_only_the_models_it_may_read(client, admin, models):
    headers = token(client, admin, "lister", "reader", [{"models": ["in-*"], "rights": ["read", "predict"]}])
    blind = token(client, admin, "predictor", "reader", [{"models": ["in-*"], "rights": ["predict"]}])

    assert [m["name"] for m in client.get("/models", headers=headers).get_json()["items"]] == ["in-a"]
    assert client.get("/models", headers=blind).get_json()["items"] == []
    assert {m["name"] for m in client.get("/models", headers=admin).get_json()["items"]} == {"in-a", "out-a"}


def test_a_scoped_token_lists_exactly_the_models_it_may_read_case_and_all_on_every_backend(client, admin):
    # SQLite's LIKE ignores case: a prefix matched there listed Team-A-x, which the same token could not read
    # (issue 67, item 19)
    names = ["team-a-x", "Team-A-x", "TEAM-A-Y", "team-ab", "Team-a-x2", "team-a-z", "exact", "EXACT", "exact2"]
    for name in names:
        upload_ok(client, admin, name, scaled_sum(1))
    headers = token(client, admin, "team-a", "reader", [{"models": ["team-a-*", "exact"], "rights": ["read"]}])

    listed = []
    for page in (1, 2, 3):
        body = client.get("/models", query_string={"per_page": 2, "page": page}, headers=headers).get_json()
        assert body["total"] == 3
        listed += [m["name"] for m in body["items"]]
    readable = [name for name in names if client.get(f"/models/{name}", headers=headers).status_code == 200]

    assert listed == ["exact", "team-a-x", "team-a-z"]  # in name order, page by page
    assert sorted(readable) == listed
    assert all(client.get(f"/models/{name}", headers=headers).status_code == 403 for name in set(names) - set(listed))


@pytest.mark.parametrize("role, scopes, fragment", [
    ("admin", [{"models": ["in-*"], "rights": ["read"]}], "admin token cannot be scoped"),
    ("reader", [{"models": ["in-*"], "rights": ["promote"]}], "role 'reader' has no right promote"),
    ("ci", [{"models": ["in-*"], "rights": ["read_inputs"]}], "role 'ci' has no right read_inputs"),
    ("ci", [{"models": ["team/*"], "rights": ["read"]}], "a model's name holds no '/'"),
    ("ci", [{"models": ["a*b"], "rights": ["read"]}], "scopes.0.models"),
    ("ci", [{"models": [], "rights": ["read"]}], "scopes.0.models"),
    ("ci", [], "scopes must be a grant"),
    ("ci", ["read"], "scopes must be a grant"),
    ("ci", {"models": ["in-*"]}, "scopes.0.rights"),
], ids=["admin", "beyond-reader", "beyond-ci", "slash", "inner-star", "no-models", "no-grants", "not-a-grant",
        "no-rights"])
def test_scopes_a_role_cannot_hold_or_no_model_could_match_are_422(client, admin, role, scopes, fragment):
    response = client.post("/tokens", json={"name": "bad", "role": role, "scopes": scopes}, headers=admin)
    assert_problem(response, 422, fragment)
    assert client.get("/tokens", headers=admin).get_json()["items"] == []  # nothing half-made


def test_one_grant_may_be_sent_without_a_list(client, admin, models):
    headers = token(client, admin, "single", "reader", {"models": ["in-*"], "rights": ["read"]})

    assert client.get("/models/in-a", headers=headers).status_code == 200
    assert_problem(client.get("/models/out-a", headers=headers), 403, "is scoped")
    listed = {t["name"]: t["scopes"] for t in client.get("/tokens", headers=admin).get_json()["items"]}
    assert listed["single"] == [{"models": ["in-*"], "rights": ["read"]}]


def test_an_unknown_right_is_422(client, admin):
    response = client.post("/tokens", json={"name": "bad", "role": "ci",
                                            "scopes": [{"models": ["x"], "rights": ["delete"]}]}, headers=admin)
    assert response.status_code == 422


def test_a_token_shows_its_scopes_and_an_unscoped_one_null(client, admin):
    token(client, admin, "scoped", "ci", [{"models": ["in-*"], "rights": ["promote", "read"]}])
    token(client, admin, "plain", "ci", None)

    listed = {t["name"]: t["scopes"] for t in client.get("/tokens", headers=admin).get_json()["items"]}

    assert listed == {"scoped": [{"models": ["in-*"], "rights": ["read", "promote"]}], "plain": None}


def test_the_cli_creates_a_scoped_token(app, client, admin, models):
    runner = app.test_cli_runner()
    made = runner.invoke(args=["tokens", "create", "cli-scoped", "--role", "ci", "--scope", "in-*:read,predict,promote"])
    assert made.exit_code == 0, made.output
    headers = {"Authorization": f"Bearer {made.output.strip()}"}

    assert client.get("/models/in-a", headers=headers).status_code == 200
    assert_problem(client.get("/models/out-a", headers=headers), 403, "is scoped")
    assert "scopes in-*:read,predict,promote" in runner.invoke(args=["tokens", "list"]).output
    refused = runner.invoke(args=["tokens", "create", "cli-bad", "--role", "ci", "--scope", "in-*"])
    assert refused.exit_code != 0 and "MODELS:RIGHTS" in refused.output
