"""Who may scrape /metrics (issue 67, item 18): it names every model and what each serves, so where reads
need a token (REQUIRE_AUTH_FOR_READS) the scrape needs one of role ``metrics`` (or admin); that role may do
nothing else and is never scoped. Where reads are open, so is /metrics."""
import pytest

from tests.helpers import assert_problem, scaled_sum, upload_ok


@pytest.fixture
def app(build_app):
    return build_app(REQUIRE_AUTH_FOR_READS=True)


def token(client, admin, name: str, role: str) -> dict:
    created = client.post("/tokens", json={"name": name, "role": role}, headers=admin)
    assert created.status_code == 201, created.get_json()
    return {"Authorization": f"Bearer {created.get_json()['token']}"}


@pytest.fixture
def served(client, admin):
    """Model ``secret-plans`` with production on v1, answered once."""
    upload_ok(client, admin, "secret-plans", scaled_sum(1))
    assert client.post("/models/secret-plans/versions/1/promote", json={}, headers=admin).status_code == 200
    assert client.post("/models/secret-plans/predict", json={"instances": [[1, 2, 3]]},
                       headers=admin).status_code == 200


def test_an_anonymous_scrape_is_401_and_names_no_model(client, served):
    refused = client.get("/metrics")

    assert_problem(refused, 401, "Authorization: Bearer")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"secret-plans" not in refused.get_data()


@pytest.mark.parametrize("role", ["reader", "ci", "feedback", "analyst"])
def test_a_token_without_the_metrics_role_is_403_naming_the_role_it_needs(client, admin, served, role):
    refused = client.get("/metrics", headers=token(client, admin, f"a-{role}", role))

    assert_problem(refused, 403, f"has role {role!r}", "role 'metrics' or 'admin'")
    assert b"secret-plans" not in refused.get_data()


@pytest.mark.parametrize("who", ["metrics", "admin"])
def test_a_metrics_or_admin_token_scrapes(client, admin, served, who):
    headers = admin if who == "admin" else token(client, admin, "prometheus", "metrics")

    scraped = client.get("/metrics", headers=headers)

    assert scraped.status_code == 200 and scraped.mimetype == "text/plain"
    assert b'registry_predictions_total{model="secret-plans"' in scraped.get_data()


@pytest.mark.parametrize("method, url, body", [
    ("GET", "/models", None),
    ("GET", "/models/secret-plans", None),
    ("GET", "/models/secret-plans/versions", None),
    ("POST", "/models/secret-plans/predict", {"instances": [[1, 2, 3]]}),
    ("POST", "/models/secret-plans/versions/1/promote", {}),
    ("GET", "/tokens", None),
])
def test_a_metrics_token_may_do_nothing_else(client, admin, served, method, url, body):
    headers = token(client, admin, "prometheus", "metrics")

    refused = client.open(url, method=method, json=body, headers=headers)

    assert_problem(refused, 403, "'prometheus'", "metrics")


def test_a_metrics_token_is_never_scoped(client, admin):
    refused = client.post("/tokens", json={"name": "prometheus", "role": "metrics",
                                           "scopes": [{"models": ["secret-*"], "rights": ["read"]}]}, headers=admin)

    assert_problem(refused, 422, "a metrics token cannot be scoped")


def test_where_reads_are_open_so_is_the_scrape(build_app):
    assert build_app().test_client().get("/metrics").status_code == 200
