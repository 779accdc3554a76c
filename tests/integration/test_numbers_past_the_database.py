"""Numbers no database integer holds (ids and versions past 2**31 - 1, PostgreSQL's integer) and instants no column holds
are a clear 404 or 422, never a 500 from the driver."""
import pytest

from tests.helpers import assert_problem, scaled_sum, upload_ok

HUGE = "3000000000"  # past 32 bits: PostgreSQL's integer columns end at 2**31 - 1


@pytest.fixture
def served(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200


@pytest.mark.parametrize("method, path, body, fragment", [
    ("get", f"/webhooks/{HUGE}", None, "no such route"),
    ("get", f"/webhooks/{HUGE}/deliveries", None, "no such route"),
    ("get", f"/webhooks/1/deliveries/{HUGE}", None, "no such route"),
    ("post", f"/webhooks/{HUGE}/ping", None, "no such route"),
    ("post", f"/models/m/versions/{HUGE}/promote", {}, "no such route"),
    ("get", f"/models/m/versions/{HUGE}", None, "no version is above"),
    ("patch", f"/models/m/versions/{HUGE}", {"description": "x"}, "no version is above"),
    ("delete", f"/models/m/versions/{HUGE}", None, "no version is above"),
    ("get", f"/models/m/versions/{HUGE}/evaluations", None, "no version is above"),
    ("post", f"/models/m/{HUGE}/predict", {"instances": [[1.0, 1.0, 1.0]]}, "no version is above"),
    ("get", f"/v2/models/m/versions/{HUGE}", None, "no version is above"),
])
def test_an_id_or_version_past_the_database_is_404(client, admin, served, method, path, body, fragment):
    response = getattr(client, method)(path, json=body, headers=admin)
    if path.startswith("/v2/"):
        assert response.status_code == 404 and fragment in response.get_json()["error"]
    else:
        assert_problem(response, 404, fragment)


@pytest.mark.parametrize("path, body", [
    ("/models/m/rollback", {"to_version": int(HUGE)}),
    ("/models/m/aliases/production/rollout", {"canary": {"version": int(HUGE), "percent": 5}}),
])
def test_a_version_past_the_database_in_a_body_is_422(client, admin, served, path, body):
    method = client.put if path.endswith("rollout") else client.post
    assert_problem(method(path, json=body, headers=admin), 422, "less than or equal to 2147483647")


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00Z"])
def test_an_instant_before_any_history_is_the_empty_map(client, served, at):
    response = client.get("/models/m/aliases", query_string={"at": at})
    assert response.status_code == 200
    assert response.get_json() == {}
