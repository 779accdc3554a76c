"""Registered models through HTTP: the list, one model, and its description and tags (API.md, Registry)."""
import re

import pytest
from sklearn.linear_model import Ridge

from tests.helpers import assert_problem, regression_data, upload

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MODEL_FIELDS = {"name", "description", "tags", "latest_version", "aliases", "created_at", "updated_at"}


def ridge(alpha: float = 1.0) -> Ridge:
    """A small fitted regressor; a different ``alpha`` gives different bytes (a new version)."""
    return Ridge(alpha=alpha).fit(*regression_data())


def register(client, headers, name, versions=1):
    for alpha in range(1, versions + 1):
        response = upload(client, headers, name, ridge(alpha))
        assert response.status_code == 201, response.get_json()


def test_no_models_is_an_empty_page(client):
    response = client.get("/models")

    assert response.status_code == 200
    assert response.get_json() == {"items": [], "total": 0, "page": 1, "per_page": 50}


def test_models_are_listed_by_name_in_code_point_order(client, admin):
    names = ["zeta", "alpha", "Mid", "a-b", "a_b", "a.b", "9lives"]
    for name in names:
        register(client, admin, name)

    body = client.get("/models").get_json()

    assert [m["name"] for m in body["items"]] == sorted(names)
    assert body["total"] == len(names)


def test_a_listed_model_has_its_latest_version_and_alias_map(client, admin):
    register(client, admin, "housing", versions=3)
    client.post("/models/housing/versions/1/promote", json={"alias": "production"}, headers=admin)
    client.post("/models/housing/versions/2/promote", json={"alias": "staging"}, headers=admin)

    [model] = client.get("/models").get_json()["items"]

    assert set(model) == MODEL_FIELDS
    assert model["name"] == "housing"
    assert model["latest_version"] == 3
    assert model["aliases"] == {"production": 1, "staging": 2}
    assert (model["description"], model["tags"]) == ("", {})
    assert TIMESTAMP.match(model["created_at"]) and TIMESTAMP.match(model["updated_at"])


def test_a_model_whose_versions_are_all_archived_has_no_latest_version(client, admin):
    register(client, admin, "housing")
    client.delete("/models/housing/versions/1", headers=admin)

    assert client.get("/models").get_json()["items"][0]["latest_version"] is None
    assert client.get("/models/housing").get_json()["latest_version"] is None


@pytest.mark.parametrize("page, per_page, expected", [
    (1, 2, ["a", "b"]),
    (2, 2, ["c", "d"]),
    (3, 2, ["e"]),
    (4, 2, []),
    (1, 500, ["a", "b", "c", "d", "e"]),
])
def test_models_are_paginated_with_a_total(client, admin, page, per_page, expected):
    for name in "ecadb":
        register(client, admin, name)

    body = client.get("/models", query_string={"page": page, "per_page": per_page}).get_json()

    assert [m["name"] for m in body["items"]] == expected
    assert (body["total"], body["page"], body["per_page"]) == (5, page, per_page)


@pytest.mark.parametrize("query, field", [
    ("per_page=501", "per_page"),
    ("per_page=0", "per_page"),
    ("page=0", "page"),
    ("page=100000000000000000000", "page"),
    ("page=two", "page"),
])
def test_bad_paging_parameters_are_422_naming_the_parameter(client, query, field):
    body = assert_problem(client.get(f"/models?{query}"), 422, field)

    assert field in body["errors"]


def test_one_model_has_its_aliases_and_version_count(client, admin):
    register(client, admin, "housing", versions=3)
    client.post("/models/housing/versions/2/promote", headers=admin)
    client.delete("/models/housing/versions/3", headers=admin)

    response = client.get("/models/housing")

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == MODEL_FIELDS | {"version_count", "prediction_log"}
    # version_count is how many versions the model has had, archived ones included.
    assert (body["version_count"], body["latest_version"], body["aliases"]) == (3, 2, {"production": 2})


@pytest.mark.parametrize("name", ["nope", ".hidden", "a%00b", "x" * 200])
def test_an_unknown_model_is_404(client, name):
    assert_problem(client.get(f"/models/{name}"), 404, "does not exist")


def test_an_admin_can_change_description_and_tags(client, admin):
    register(client, admin, "housing")
    before = client.get("/models/housing").get_json()

    response = client.patch("/models/housing", json={"description": "prices", "tags": {"team": "pricing"}}, headers=admin)

    assert response.status_code == 200
    body = response.get_json()
    assert (body["description"], body["tags"]) == ("prices", {"team": "pricing"})
    assert body["updated_at"] >= before["updated_at"]
    assert client.get("/models/housing").get_json() == body
    assert client.get("/models").get_json()["items"][0]["description"] == "prices"


def test_a_patch_changes_only_the_fields_it_names(client, admin):
    register(client, admin, "housing")
    client.patch("/models/housing", json={"description": "prices", "tags": {"team": "pricing"}}, headers=admin)

    body = client.patch("/models/housing", json={"tags": {}}, headers=admin).get_json()

    assert (body["description"], body["tags"]) == ("prices", {})


@pytest.mark.parametrize("who, status", [("ci", 403), ("anonymous", 401), ("bad-token", 401)])
def test_only_admins_patch_a_model(client, admin, ci, who, status):
    register(client, admin, "housing")
    headers = {"ci": ci, "anonymous": {}, "bad-token": {"Authorization": "Bearer nope"}}[who]

    response = client.patch("/models/housing", json={"description": "hijacked"}, headers=headers)

    assert_problem(response, status)
    assert client.get("/models/housing").get_json()["description"] == ""


@pytest.mark.parametrize("body, field", [
    ({"name": "renamed"}, "name"),
    ({"tags": {"team": 1}}, "tags"),
    ({"tags": ["a"]}, "tags"),
    ({"description": 5}, "description"),
    ({"description": "a\u0000b"}, "description"),
    ({"description": "x" * 10_001}, "description"),
])
def test_an_invalid_patch_is_422_and_changes_nothing(client, admin, body, field):
    register(client, admin, "housing")

    problem = assert_problem(client.patch("/models/housing", json=body, headers=admin), 422, field)

    assert field in problem["errors"]
    assert client.get("/models/housing").get_json()["description"] == ""


def test_patching_an_unknown_model_is_404(client, admin):
    assert_problem(client.patch("/models/nope", json={"description": "x"}, headers=admin), 404, "nope")
    assert client.get("/models").get_json()["total"] == 0


@pytest.mark.parametrize("data, content_type, status", [
    ("{not json", "application/json", 400),
    ("[]", "application/json", 422),
    ("description=x", "application/x-www-form-urlencoded", 415),
    ('{"description": "x"}', "text/plain", 415),
])
def test_a_patch_body_that_is_not_a_json_object_is_refused(client, admin, data, content_type, status):
    register(client, admin, "housing")

    response = client.patch("/models/housing", data=data, headers=admin, content_type=content_type)

    body = assert_problem(response, status)
    assert isinstance(body.get("errors", {}), dict)
    assert client.get("/models/housing").get_json()["description"] == ""
