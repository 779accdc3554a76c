"""`audit verify` replays the chain into what each alias answers (its version, its rollout's split) and each
policy, and names every live row that differs: an alias row, a rollout or a policy changed, added or deleted
in the database behind the registry's back (a deleted policy row would leave its alias unguarded)."""
import pytest
from sklearn.linear_model import LinearRegression
from sqlalchemy import text

from registry.db import db
from tests.helpers import regression_data, upload_ok

POLICY = "/models/m/aliases/production/policy"


@pytest.fixture
def governed(client, admin):
    """Model m: production on 2 (protected, 1 approval), staging on 1 with a canary of 2 at 25 %."""
    X, y = regression_data()
    for factor in (1, 2):
        upload_ok(client, admin, "m", LinearRegression().fit(X, y * factor))
    calls = [
        ("post", "/models/m/versions/1/promote", {}),
        ("post", "/models/m/versions/2/promote", {}),
        ("post", "/models/m/versions/1/promote", {"alias": "staging"}),
        ("put", "/models/m/aliases/staging/rollout", {"canary": {"version": 2, "percent": 25}}),
        ("put", "/models/m/aliases/staging/rollout", {"canary": {"version": 2, "percent": 40}}),
        ("put", POLICY, {"approvals": 2, "reason": "release train"}),
        ("put", POLICY, {"approvals": 1, "reason": "fewer people this month"}),
    ]
    for method, url, body in calls:
        response = getattr(client, method)(url, json=body, headers=admin)
        assert response.status_code in (200, 201), (url, response.get_json())


def verify(client, admin) -> dict:
    response = client.get("/audit/verify", headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def execute(app, sql: str, **params) -> None:
    """A statement run straight on the database, behind the registry's back."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text(sql), params)


def entry_of(app, action: str, alias: str) -> int:
    """The id of the latest ``action`` entry of ``alias``."""
    with app.app_context():
        return db.session.execute(text("SELECT max(id) FROM promotion_events WHERE action = :action AND alias = :alias"),
                                  {"action": action, "alias": alias}).scalar_one()


def test_rows_made_by_the_registry_are_what_the_chain_says(client, admin, governed):
    body = verify(client, admin)
    assert (body["ok"], body["first_broken"], body["state"]) == (True, None, [])


def test_an_alias_row_pointed_elsewhere_in_the_database_is_named(app, client, admin, governed):
    execute(app, "UPDATE aliases SET version_id = (SELECT id FROM versions WHERE number = 1) WHERE name = 'production'")

    body = verify(client, admin)

    assert body["ok"] is False
    broken = body["first_broken"]
    assert (broken["kind"], broken["problem"], broken["id"]) == ("state", "differs", entry_of(app, "promote", "production"))
    assert "the alias of 'production' of 'm': version 1 in the database, the chain says version 2" in broken["detail"]
    assert body["state"] == [broken]


def test_an_alias_row_added_or_removed_in_the_database_is_named(app, client, admin, governed):
    execute(app, "INSERT INTO aliases (model_id, name, version_id, updated_at) SELECT model_id, 'shadow-prod', id, "
                 "created_at FROM versions WHERE number = 2")
    execute(app, "DELETE FROM aliases WHERE name = 'staging'")

    details = [row["detail"] for row in verify(client, admin)["state"]]

    assert any("'shadow-prod'" in d and "version 2 in the database, the chain says no alias row (no entry ever set it)"
               in d for d in details), details
    assert any("'staging'" in d and "no alias row in the database, the chain says version 1" in d for d in details)


def test_a_deleted_policy_row_is_named_for_the_alias_it_left_unguarded(app, client, admin, governed):
    execute(app, "DELETE FROM alias_policies")

    [broken] = verify(client, admin)["state"]

    assert broken["id"] == entry_of(app, "policy_set", "production")
    assert "the policy of 'production' of 'm': no policy in the database, the chain says a policy of 1 approval" \
        in broken["detail"]


def test_a_policy_rewritten_in_the_database_is_named_with_what_differs(app, client, admin, governed):
    execute(app, "UPDATE alias_policies SET document = :document",
            document='{"movers": {"roles": ["admin", "ci"], "tokens": []}, "approvals": 1, "require": {}, '
                     '"freeze": [], "request_hours": 9999}')

    [broken] = verify(client, admin)["state"]

    assert "the policy of 'production' of 'm': request_hours in the database differ" in broken["detail"]


def test_a_policy_row_the_chain_never_set_is_named(app, client, admin, governed):
    execute(app, "INSERT INTO alias_policies (model_id, alias, document, updated_by, updated_at) SELECT model_id, "
                 "'staging', document, 'mallory', updated_at FROM alias_policies")

    [broken] = verify(client, admin)["state"]

    assert broken["id"] is None
    assert "the policy of 'staging' of 'm': a policy of 1 approval(s) in the database, the chain says no policy" \
        in broken["detail"]


@pytest.mark.parametrize("sql, said", [
    ("UPDATE rollouts SET canary_percent = 99.99", "canary version 2 at 99.99 % in the database, the chain says "
                                                   "canary version 2 at 40 %"),
    ("UPDATE rollouts SET ended_at = started_at", "no running rollout in the database, the chain says canary version 2 "
                                                  "at 40 %"),
])
def test_a_rollout_split_changed_in_the_database_is_named(app, client, admin, governed, sql, said):
    execute(app, sql)

    [broken] = verify(client, admin)["state"]

    assert broken["id"] == entry_of(app, "rollout_change", "staging")
    assert said in broken["detail"]


def test_the_chain_is_checked_first_and_the_rows_once_it_holds(app, client, admin, governed):
    execute(app, "DELETE FROM alias_policies")
    execute(app, "UPDATE promotion_events SET reason = 'x' WHERE id = 1")

    body = verify(client, admin)

    assert (body["first_broken"]["problem"], body["state"]) == ("altered", [])


def test_the_cli_check_names_every_row_and_exits_1(app, client, admin, governed):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    execute(app, "DELETE FROM alias_policies")
    execute(app, "UPDATE aliases SET version_id = (SELECT id FROM versions WHERE number = 1) WHERE name = 'production'")

    result = runner.invoke(args=["audit", "verify"])

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["differs", "differs"]
    assert "the rows above are not what it says" in lines[2]
