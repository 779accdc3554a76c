"""What is not an alias's move is in the ledger too (issue 71): a model's description, tags or prediction log, a
version's card, and a webhook subscribed, changed, given a new secret or removed are each an entry of the hash
chain, with who and why, so that a declared file's apply leaves its sha256 on every change. Only what differs is
an entry (a second apply of the same file adds none); a refused change adds none; no secret is ever in one."""
import json

import pytest
from sklearn.linear_model import LinearRegression

from tests.helpers import assert_problem, regression_data, upload_ok

PUBLIC_URL = "https://93.184.215.14/hooks/registry"  # a literal public address: no DNS needed
REASON = "declared state: registry.yaml sha256 0f3a commit 9b1c"


def ledger(client, admin) -> list[dict]:
    """Every entry of the ledger's export, oldest first."""
    exported = client.get("/audit/export", headers=admin)
    assert exported.status_code == 200
    return [json.loads(line) for line in exported.get_data(as_text=True).splitlines()]


def words_entries(client, admin) -> list[tuple]:
    """The entries of this test's kinds: (action, actor, reason, version, details)."""
    kinds = {"model_update", "card_update", "webhook_create", "webhook_update", "webhook_rotate", "webhook_delete"}
    return [(e["action"], e["actor"], e["reason"], e["to_version"], e["details"])
            for e in ledger(client, admin) if e["action"] in kinds]


def verified(client, admin) -> dict:
    response = client.get("/audit/verify", headers=admin)
    assert response.status_code == 200
    return response.get_json()


@pytest.fixture
def model(client, admin):
    X, y = regression_data()
    upload_ok(client, admin, "m", LinearRegression().fit(X, y))
    return "m"


def test_a_models_words_changed_are_one_entry_naming_what_differs(client, admin, model):
    changed = client.patch("/models/m", json={"description": "house prices", "tags": {"team": "a"}, "reason": REASON},
                           headers=admin)
    assert changed.status_code == 200
    again = client.patch("/models/m", json={"description": "house prices", "tags": {"team": "b"}}, headers=admin)
    assert again.status_code == 200
    assert client.patch("/models/m", json={"description": "house prices"}, headers=admin).status_code == 200

    assert words_entries(client, admin) == [
        ("model_update", "admin", REASON, None, {"changed": {"description": "house prices", "tags": {"team": "a"}}}),
        ("model_update", "admin", "", None, {"changed": {"tags": {"team": "b"}}}),
    ]  # the third changed nothing, and is no entry
    assert verified(client, admin)["ok"] is True


def test_a_ci_token_s_prediction_log_change_is_its_entry(client, admin, ci, model):
    changed = client.patch("/models/m", json={"prediction_log": {"sample": 0.5}, "reason": "more rows for drift"},
                           headers=ci)
    assert changed.status_code == 200

    assert words_entries(client, admin) == [
        ("model_update", "ci-test", "more rows for drift", None, {"changed": {"prediction_log": {"sample": 0.5}}})]


def test_a_versions_card_is_an_entry_of_its_version(client, admin, ci, model):
    changed = client.patch("/models/m/versions/1", json={"intended_use": "pricing", "limitations": "one city",
                                                         "reason": REASON}, headers=ci)
    assert changed.status_code == 200

    assert words_entries(client, admin) == [
        ("card_update", "ci-test", REASON, 1, {"changed": {"intended_use": "pricing", "limitations": "one city"}})]
    assert client.get("/models/m/history", headers=admin).get_json()["items"][0]["action"] == "card_update"


@pytest.mark.parametrize("body, status, said", [
    ({"description": "x", "reason": "r" * 2_001}, 422, "reason"),
    ({"description": "x", "reason": "nul\x00"}, 422, "NUL"),
    ({"description": "x", "reason": 7}, 422, "reason"),
])
def test_a_bad_reason_is_refused_and_changes_nothing(client, admin, model, body, status, said):
    assert_problem(client.patch("/models/m", json=body, headers=admin), status, said)
    assert_problem(client.patch("/models/m/versions/1", json=body, headers=admin), status, said)

    assert client.get("/models/m", headers=admin).get_json()["description"] == ""
    assert words_entries(client, admin) == []


def test_who_may_not_change_the_words_leaves_no_entry(client, admin, ci, tokens, model):
    reader = tokens("reader-test", "reader")
    assert_problem(client.patch("/models/m", json={"description": "x", "reason": REASON}), 401)
    assert_problem(client.patch("/models/m", json={"description": "x", "reason": REASON}, headers=ci), 403, "admin")
    assert_problem(client.patch("/models/m/versions/1", json={"limitations": "x"}, headers=reader), 403)
    assert_problem(client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["*"], "reason": REASON}, headers=ci),
                   403)

    assert words_entries(client, admin) == []


def test_a_webhooks_life_is_in_the_ledger_without_its_secret(client, admin):
    made = client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["alias.moved"], "reason": REASON},
                       headers=admin)
    assert made.status_code == 201
    hook, secret = made.get_json()["id"], made.get_json()["secret"]
    changed = client.patch(f"/webhooks/{hook}", json={"active": False, "events": ["alias.moved"],
                                                      "reason": "paused for the migration"}, headers=admin)
    assert changed.status_code == 200
    rotated = client.post(f"/webhooks/{hook}/rotate-secret", json={"grace_hours": 1, "reason": "leaked in a log"},
                          headers=admin)
    assert rotated.status_code == 200
    assert client.delete(f"/webhooks/{hook}", query_string={"reason": "receiver retired"},
                         headers=admin).status_code == 204

    assert words_entries(client, admin) == [
        ("webhook_create", "admin", REASON, None,
         {"webhook": hook, "url": PUBLIC_URL, "events": ["alias.moved"], "description": ""}),
        ("webhook_update", "admin", "paused for the migration", None, {"webhook": hook, "changed": {"active": False}}),
        ("webhook_rotate", "admin", "leaked in a log", None, {"webhook": hook, "grace_hours": 1.0}),
        ("webhook_delete", "admin", "receiver retired", None,
         {"webhook": hook, "url": PUBLIC_URL, "events": ["alias.moved"]}),
    ]
    export = client.get("/audit/export", headers=admin).get_data(as_text=True)
    assert secret not in export and rotated.get_json()["secret"] not in export
    assert verified(client, admin)["ok"] is True


def test_the_reason_of_a_change_of_words_is_under_the_chains_hash(app, client, admin, model):
    from sqlalchemy import text

    from registry.db import db

    assert client.patch("/models/m", json={"description": "x", "reason": REASON}, headers=admin).status_code == 200
    with app.app_context():
        db.session.execute(text("UPDATE promotion_events SET reason = '' WHERE action = 'model_update'"))
        db.session.commit()

    assert verified(client, admin)["first_broken"]["kind"] == "model_update"


@pytest.mark.parametrize("reason, said", [("r" * 2_001, "reason"), ("nul\x00", "NUL")])
def test_a_bad_reason_on_a_webhook_route_is_refused_and_changes_nothing(client, admin, reason, said):
    made = client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["*"]}, headers=admin)
    hook = made.get_json()["id"]
    before = words_entries(client, admin)

    assert_problem(client.post("/webhooks", json={"url": PUBLIC_URL + "/2", "events": ["*"], "reason": reason},
                               headers=admin), 422, said)
    assert_problem(client.patch(f"/webhooks/{hook}", json={"active": False, "reason": reason}, headers=admin),
                   422, said)
    assert_problem(client.post(f"/webhooks/{hook}/rotate-secret", json={"reason": reason}, headers=admin), 422, said)
    assert_problem(client.delete(f"/webhooks/{hook}", query_string={"reason": reason}, headers=admin), 422, said)

    assert [w["id"] for w in client.get("/webhooks", headers=admin).get_json()["items"]] == [hook]
    assert client.get(f"/webhooks/{hook}", headers=admin).get_json()["active"] is True
    assert words_entries(client, admin) == before


def test_who_may_not_manage_webhooks_leaves_no_entry(client, admin, ci):
    hook = client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["*"]}, headers=admin).get_json()["id"]
    before = words_entries(client, admin)

    assert_problem(client.patch(f"/webhooks/{hook}", json={"active": False, "reason": REASON}), 401)
    assert_problem(client.patch(f"/webhooks/{hook}", json={"active": False, "reason": REASON}, headers=ci), 403)
    assert_problem(client.post(f"/webhooks/{hook}/rotate-secret", json={"reason": REASON}, headers=ci), 403)
    assert_problem(client.delete(f"/webhooks/{hook}", query_string={"reason": REASON}), 401)
    assert_problem(client.delete(f"/webhooks/{hook}", query_string={"reason": REASON}, headers=ci), 403)

    assert client.get(f"/webhooks/{hook}", headers=admin).get_json()["active"] is True
    assert words_entries(client, admin) == before


def test_a_models_history_shows_an_entry_of_no_alias_as_its_openapi_document_says(client, admin, model):
    assert client.patch("/models/m", json={"description": "house prices"}, headers=admin).status_code == 200
    history = client.get("/models/m/history", headers=admin).get_json()["items"]
    assert [(event["action"], event["alias"]) for event in history] == [("model_update", None)]
    alias = client.get("/openapi.json").get_json()["components"]["schemas"]["EventOut"]["properties"]["alias"]
    assert "null" in alias["type"], alias  # schemathesis found the document saying string only
