"""The schema changes only through migrations: head matches the models, and base is empty again."""
import hashlib
import io
import json
import sqlite3
import subprocess
from contextlib import closing

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sklearn.linear_model import LinearRegression
from sqlalchemy import inspect, text

from bench.harness import server
from config import BASE_DIR
from registry.db import db, write_transaction
from registry.integrity import ledger as ledger_check
from registry.ledger import GENESIS
from registry.tables import PromotionEvent
from tests.databases import fresh_database
from tests.helpers import MIGRATIONS, artifact_bytes, close_app, make_app

TABLES = {"models", "versions", "aliases", "promotion_events", "evaluations", "api_tokens", "rollouts", "rollout_stats",
          "webhook_subscriptions", "webhook_events", "webhook_deliveries", "webhook_attempts", "browser_sessions",
          "prediction_log", "drift_references", "version_health", "leases", "rollout_plans", "artifact_checks",
          "ledger_head", "prediction_log_exports", "alias_policies", "approval_requests", "approvals", "batch_runs"}


@pytest.fixture
def empty_app(tmp_path):
    """An app on a brand-new, empty database of the backend under test."""
    with fresh_database(tmp_path) as url:
        app = make_app(url, tmp_path / "artifacts")
        with app.app_context():
            yield app
        close_app(app)  # a request started its lifecycle: its writer must not outlive the test (it shares log_bounds')


def _tables() -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def _head() -> str:
    return ScriptDirectory(MIGRATIONS).get_current_head()


def test_an_empty_database_upgrades_to_head_with_every_table(empty_app):
    assert _tables() == set()

    upgrade(directory=MIGRATIONS)

    assert _tables() == TABLES


def test_the_readmes_upgrade_command_brings_an_empty_database_to_head(empty_app, tmp_path):
    env = server.service_env(db.engine.url.render_as_string(hide_password=False), tmp_path / "artifacts", "token")

    done = subprocess.run([str(server.BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    assert _tables() == TABLES
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == _head()


def test_the_migrated_schema_matches_the_models_exactly(empty_app):
    upgrade(directory=MIGRATIONS)

    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        differences = compare_metadata(context, db.metadata)

    assert differences == []


def test_downgrading_to_base_leaves_no_tables(empty_app):
    upgrade(directory=MIGRATIONS)

    downgrade(directory=MIGRATIONS, revision="base")

    assert _tables() == set()


def test_upgrade_after_downgrade_is_repeatable(empty_app):
    upgrade(directory=MIGRATIONS)
    downgrade(directory=MIGRATIONS, revision="base")

    upgrade(directory=MIGRATIONS)

    assert _tables() == TABLES


def test_0002_keeps_the_history_and_its_downgrade_drops_only_alias_deletes(empty_app):
    upgrade(directory=MIGRATIONS, revision="0001")
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO models (id, name, description, tags, last_version, created_at, updated_at) "
            "VALUES (1, 'm', '', '{}', 1, '2026-11-20 10:00:00', '2026-11-20 10:00:00')"
        ))
        connection.execute(text(
            "INSERT INTO promotion_events (model_id, alias, action, from_version, to_version, actor, reason, forced, at) "
            "VALUES (1, 'production', 'promote', NULL, 1, 'ci', '', false, '2026-11-20 10:00:00')"
        ))

    upgrade(directory=MIGRATIONS)
    with db.engine.begin() as connection:  # (outside the ledger's chain: only its downgrade matters here)
        connection.execute(text(
            "INSERT INTO promotion_events (model_id, alias, action, from_version, to_version, actor, reason, forced, "
            "at, prev_hash, hash) "
            "VALUES (1, 'production', 'delete', 1, NULL, 'ci', '', false, '2026-11-20 11:00:00', '', '')"
        ))
    downgrade(directory=MIGRATIONS, revision="0001")

    with db.engine.connect() as connection:
        actions = connection.execute(text("SELECT action FROM promotion_events")).scalars().all()
    assert actions == ["promote"]
    assert "evaluations" not in _tables()


def test_0014_measures_logged_rows_and_makes_an_older_sqlite_file_give_pages_back(empty_app):
    upgrade(directory=MIGRATIONS, revision="0013")
    if db.engine.dialect.name == "sqlite":  # a file made before revision 0014 set auto_vacuum at its first connection
        db.engine.dispose()
        with closing(sqlite3.connect(db.engine.url.database, isolation_level=None)) as connection:
            connection.execute("PRAGMA auto_vacuum=NONE")
            connection.execute("VACUUM")
            assert connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO models (id, name, description, tags, last_version, created_at, updated_at) "
            "VALUES (1, 'm', '', '{}', 1, '2026-11-20 10:00:00', '2026-11-20 10:00:00')"
        ))
        connection.execute(text(
            "INSERT INTO prediction_log (model_id, version, request_id, alias, route, inputs, outputs, latency_ms, "
            "status, at) VALUES (1, 1, 'r-1', 'production', NULL, '[[1.0,2.0]]', '{\"predictions\":[3]}', 1.0, 200, "
            "'2026-11-20 10:00:00')"
        ))

    upgrade(directory=MIGRATIONS)

    with db.engine.connect() as connection:
        size = connection.execute(text("SELECT bytes FROM prediction_log")).scalar()
        assert size == 64 + len("[[1.0,2.0]]") + len('{"predictions":[3]}') + len("r-1") + len("production")
        if db.engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2  # incremental


def test_0015_names_every_existing_version_scikit_learn(empty_app):
    upgrade(directory=MIGRATIONS, revision="0014")
    required = [c for c in inspect(db.engine).get_columns("versions")
                if not c["nullable"] and c["default"] is None and c["name"] != "id"]
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO models (id, name, description, tags, last_version, created_at, updated_at) "
            "VALUES (1, 'm', '', '{}', 1, '2026-11-20 10:00:00', '2026-11-20 10:00:00')"
        ))
        samples = {"INT": 1, "BOOL": False, "JSON": "{}", "TIME": "2026-11-20 10:00:00"}

        def sample(column):
            kind = str(column["type"]).upper()
            return next((value for key, value in samples.items() if key in kind), "x")

        values = {c["name"]: 1 if c["name"] in ("model_id", "number") else sample(c) for c in required}
        connection.execute(text(f"INSERT INTO versions ({', '.join(values)}) VALUES "
                                f"({', '.join(':' + name for name in values)})"), values)

    upgrade(directory=MIGRATIONS)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT framework FROM versions")).scalars().all() == ["scikit-learn"]


def _history_at_0015(connection) -> None:
    """A model with three history entries written as the release before the ledger's chain wrote them."""
    connection.execute(text(
        "INSERT INTO models (id, name, description, tags, last_version, created_at, updated_at) "
        "VALUES (1, 'm', '', '{}', 2, '2026-11-20 10:00:00', '2026-11-20 10:00:00')"
    ))
    rows = [
        ("promote", None, 1, "ci", "first", False, None, "2026-11-20 10:00:00"),
        ("promote", 1, 2, "ci", "retrain: r2 0.33 vs 0.29 – ünïcode", True, None, "2026-11-20 11:00:00.250000"),
        ("rollout_start", 2, 2, "admin", "", False, '{"canary": {"version": 1, "percent": 12.5}, "figures": [1.0, 2]}',
         "2026-11-20 12:00:00.000001"),
    ]
    for action, from_version, to_version, actor, reason, forced, details, at in rows:
        connection.execute(text(
            "INSERT INTO promotion_events (model_id, alias, action, from_version, to_version, actor, reason, forced, "
            "at, details) VALUES (1, 'production', :action, :from_version, :to_version, :actor, :reason, :forced, "
            ":at, :details)"
        ), {"action": action, "from_version": from_version, "to_version": to_version, "actor": actor,
            "reason": reason, "forced": forced, "at": at, "details": details})


def test_0019_starts_an_empty_chain_on_an_empty_database(empty_app):
    upgrade(directory=MIGRATIONS)

    verdict = ledger_check.verify()
    assert (verdict.ok, verdict.entries, verdict.head) == (True, 0, GENESIS)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT entries, last_id, hash FROM ledger_head")).one() == (0, None, GENESIS)


def test_0019_chains_the_existing_history_in_order_and_new_entries_follow_it(empty_app):
    upgrade(directory=MIGRATIONS, revision="0015")
    with db.engine.begin() as connection:
        _history_at_0015(connection)

    upgrade(directory=MIGRATIONS)

    with db.engine.connect() as connection:
        chained = connection.execute(text("SELECT id, prev_hash, hash FROM promotion_events ORDER BY id")).all()
    assert [row.id for row in chained] == [1, 2, 3]
    assert chained[0].prev_hash == GENESIS
    assert [row.prev_hash for row in chained[1:]] == [row.hash for row in chained[:-1]]
    first = db.session.get(PromotionEvent, 1)
    assert chained[0].hash == hashlib.sha256(json.dumps(
        {"id": 1, "at": "2026-11-20T10:00:00.000000Z", "model_id": 1, "alias": "production", "action": "promote",
         "from_version": None, "to_version": 1, "reverts_event_id": None, "actor": "ci", "reason": "first",
         "forced": False, "details": None, "prev_hash": GENESIS},
        sort_keys=True, separators=(",", ":")).encode()).hexdigest() == first.hash
    verdict = ledger_check.verify()
    assert (verdict.entries, verdict.head) == (3, chained[-1].hash)
    # every entry holds; the made-up history's alias and rollout have no rows, which the check names
    assert [(broken.kind, broken.id) for broken in verdict.state] == [("state", 2), ("state", 3)]

    with write_transaction():
        db.session.add(PromotionEvent(model_id=1, alias="production", action="rollback", from_version=2, to_version=1,
                                      reverts_event_id=2, actor="admin"))
    verdict = ledger_check.verify()
    assert (verdict.entries, [broken.kind for broken in verdict.state]) == (4, ["state", "state"])
    assert db.session.get(PromotionEvent, 4).prev_hash == chained[-1].hash


def test_0019_downgrade_keeps_the_history_without_its_chain(empty_app):
    upgrade(directory=MIGRATIONS, revision="0015")
    with db.engine.begin() as connection:
        _history_at_0015(connection)
    upgrade(directory=MIGRATIONS)

    downgrade(directory=MIGRATIONS, revision="0015")

    assert "ledger_head" not in _tables()
    assert "hash" not in {c["name"] for c in inspect(db.engine).get_columns("promotion_events")}
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM promotion_events")).scalar() == 3


def test_0020_keeps_logged_rows_counts_their_labels_and_never_hands_out_a_logged_id_again(empty_app):
    upgrade(directory=MIGRATIONS, revision="0019")
    row = ("INSERT INTO prediction_log (model_id, version, request_id, latency_ms, status, at, bytes) "
           "VALUES (1, 1, :request_id, 1.0, 200, '2026-11-20 10:00:00', 70)")
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO models (id, name, description, tags, last_version, created_at, updated_at) "
            "VALUES (1, 'm', '', '{}', 1, '2026-11-20 10:00:00', '2026-11-20 10:00:00')"
        ))
        for request_id in ("r-1", "r-2", "r-3"):
            connection.execute(text(row), {"request_id": request_id})
        connection.execute(text("UPDATE prediction_log SET label = '[1.5, 2]' WHERE request_id = 'r-2'"))

    upgrade(directory=MIGRATIONS)

    with db.engine.begin() as connection:
        sizes = connection.execute(text("SELECT bytes FROM prediction_log ORDER BY id")).scalars().all()
        assert sizes == [70, 70 + len("[1.5, 2]"), 70]
        kept = connection.execute(text("SELECT id, request_id FROM prediction_log ORDER BY id")).all()
        assert [tuple(found) for found in kept] == [(1, "r-1"), (2, "r-2"), (3, "r-3")]
        connection.execute(text("DELETE FROM prediction_log"))  # every row pruned: the largest id is gone too
        connection.execute(text(row), {"request_id": "r-4"})
        assert connection.execute(text("SELECT id FROM prediction_log")).scalar() == 4
    assert {index["name"] for index in inspect(db.engine).get_indexes("prediction_log")} == {
        "ix_prediction_log_at", "ix_prediction_log_model_id_at", "ix_prediction_log_model_id_request_id"}


def test_0025_keeps_the_chained_history_holding_and_takes_token_entries(empty_app):
    upgrade(directory=MIGRATIONS, revision="0015")
    with db.engine.begin() as connection:
        _history_at_0015(connection)
    upgrade(directory=MIGRATIONS, revision="0024")
    with db.engine.connect() as connection:
        before = connection.execute(text("SELECT id, hash FROM promotion_events ORDER BY id")).all()

    upgrade(directory=MIGRATIONS)

    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT id, hash FROM promotion_events ORDER BY id")).all() == before
    with write_transaction():
        db.session.add(PromotionEvent(model_id=None, alias=None, action="token_create", actor="admin",
                                      details={"token": "t", "role": "ci", "scopes": None}))
    verdict = ledger_check.verify()
    # every entry holds (the made-up history's alias and rollout have no rows, which the check names)
    assert (verdict.entries, [broken.kind for broken in verdict.state]) == (len(before) + 1, ["state", "state"])


def test_0025_downgrade_refuses_to_break_a_chain_that_holds_token_entries(empty_app):
    upgrade(directory=MIGRATIONS, revision="0025")  # not head: PostgreSQL rolls a failed downgrade back to where it began
    with write_transaction():
        db.session.add(PromotionEvent(model_id=None, alias=None, action="token_revoke", actor="admin",
                                      details={"token": "t", "role": "ci", "scopes": None}))

    with pytest.raises(SystemExit):  # Flask-Migrate's word for the migration's RuntimeError
        downgrade(directory=MIGRATIONS, revision="0024")

    db.session.rollback()
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0025"
    assert ledger_check.verify().ok


def test_0026_gives_logged_rows_an_empty_trace_id_and_its_downgrade_drops_only_that(empty_app):
    upgrade(directory=MIGRATIONS, revision="0025")
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO models (id, name, description, tags, last_version, created_at, updated_at) "
            "VALUES (1, 'm', '', '{}', 1, '2026-11-25 10:00:00', '2026-11-25 10:00:00')"
        ))
        connection.execute(text("INSERT INTO prediction_log (model_id, version, request_id, latency_ms, status, at, bytes) "
                                "VALUES (1, 1, 'r-1', 1.0, 200, '2026-11-25 10:00:00', 70)"))

    upgrade(directory=MIGRATIONS)

    with db.engine.begin() as connection:
        assert [tuple(row) for row in connection.execute(text("SELECT request_id, trace_id FROM prediction_log"))] == [
            ("r-1", None)]
        connection.execute(text("UPDATE prediction_log SET trace_id = :trace"), {"trace": "4bf92f3577b34da6a3ce929d0e0e4736"})
    downgrade(directory=MIGRATIONS, revision="0025")
    assert "trace_id" not in {column["name"] for column in inspect(db.engine).get_columns("prediction_log")}


def test_0027_keeps_logged_rows_unexplained_and_its_downgrade_drops_only_its_columns(empty_app):
    upgrade(directory=MIGRATIONS, revision="0026")
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO models (id, name, description, tags, last_version, created_at, updated_at, prediction_log_sample) "
            "VALUES (1, 'm', '', '{}', 1, '2026-11-20 10:00:00', '2026-11-20 10:00:00', 0.5)"
        ))
        connection.execute(text(
            "INSERT INTO prediction_log (model_id, version, request_id, alias, route, inputs, outputs, latency_ms, "
            "status, at, bytes) VALUES (1, 1, 'r-1', 'production', NULL, '[[1.0]]', '{\"predictions\":[3]}', 1.0, 200, "
            "'2026-11-20 10:00:00', 100)"
        ))

    upgrade(directory=MIGRATIONS, revision="0027")
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT prediction_log_sample, prediction_log_explain FROM models")).one() == (0.5, None)
        assert connection.execute(text("SELECT bytes, explanations FROM prediction_log")).one() == (100, None)

    downgrade(directory=MIGRATIONS, revision="0026")
    assert "explanations" not in {c["name"] for c in inspect(db.engine).get_columns("prediction_log")}
    assert "prediction_log_explain" not in {c["name"] for c in inspect(db.engine).get_columns("models")}
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT request_id FROM prediction_log")).scalars().all() == ["r-1"]


def test_0028_keeps_token_sessions_takes_peoples_and_its_downgrade_ends_only_theirs(empty_app):
    upgrade(directory=MIGRATIONS, revision="0027")
    with db.engine.begin() as connection:
        connection.execute(text("INSERT INTO browser_sessions (id_hash, token_hash, created_at, expires_at) "
                                "VALUES ('s-token', 't-hash', '2026-11-25 10:00:00', '2026-11-26 10:00:00')"))

    upgrade(directory=MIGRATIONS, revision="0028")

    with db.engine.begin() as connection:
        assert [tuple(row) for row in connection.execute(text("SELECT id_hash, token_hash, person FROM browser_sessions"))] == [
            ("s-token", "t-hash", None)]
        connection.execute(text("INSERT INTO browser_sessions (id_hash, token_hash, person, created_at, expires_at) "
                                "VALUES ('s-person', NULL, :person, '2026-11-25 10:00:00', '2026-11-26 10:00:00')"),
                           {"person": json.dumps({"name": "oidc:alice@example.com", "role": "admin"})})
    downgrade(directory=MIGRATIONS, revision="0027")
    with db.engine.begin() as connection:
        assert [tuple(row) for row in connection.execute(text("SELECT id_hash, token_hash FROM browser_sessions"))] == [
            ("s-token", "t-hash")]
    assert "person" not in {column["name"] for column in inspect(db.engine).get_columns("browser_sessions")}


def test_0029_gives_open_requests_no_requester_groups_and_its_downgrade_drops_only_that(empty_app):
    upgrade(directory=MIGRATIONS, revision="0028")
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO models (id, name, description, tags, last_version, created_at, updated_at) "
            "VALUES (1, 'm', '', '{}', 1, '2026-11-25 10:00:00', '2026-11-25 10:00:00')"))
        required = [c for c in inspect(connection).get_columns("versions") if not c["nullable"] and c["default"] is None]
        values = {c["name"]: 1 if c["name"] in ("id", "model_id", "number", "size_bytes") else
                  "{}" if "JSON" in str(c["type"]).upper() else
                  "2026-11-25 10:00:00" if "TIME" in str(c["type"]).upper() else "x" for c in required}
        connection.execute(text(f"INSERT INTO versions ({', '.join(values)}) VALUES "
                                f"({', '.join(':' + name for name in values)})"), values)
        connection.execute(text(
            "INSERT INTO approval_requests (id, model_id, alias, version_id, state, reason, requested_by, requester_role, "
            "opened_at, expires_at, close_reason) VALUES (1, 1, 'production', 1, 'open', 'r', 'ci', 'ci', "
            "'2026-11-25 10:00:00', '2026-11-28 10:00:00', '')"))

    upgrade(directory=MIGRATIONS, revision="0029")

    with db.engine.begin() as connection:
        assert [tuple(row) for row in connection.execute(text(
            "SELECT id, requested_by, requester_groups FROM approval_requests"))] == [(1, "ci", None)]
    downgrade(directory=MIGRATIONS, revision="0028")
    assert "requester_groups" not in {column["name"] for column in inspect(db.engine).get_columns("approval_requests")}
    with db.engine.begin() as connection:
        assert connection.execute(text("SELECT count(*) FROM approval_requests")).scalar() == 1


def test_a_token_made_before_scopes_keeps_its_whole_role_through_every_later_migration(empty_app):
    upgrade(directory=MIGRATIONS, revision="0023")  # before this round's access and governance migrations
    with db.engine.begin() as connection:
        connection.execute(text("INSERT INTO api_tokens (name, role, token_hash, created_at) "
                                "VALUES ('old-ci', 'ci', :hash, '2026-11-20 10:00:00')"),
                           {"hash": hashlib.sha256(b"old-ci-secret").hexdigest()})

    upgrade(directory=MIGRATIONS)

    with db.engine.begin() as connection:
        assert [tuple(row) for row in connection.execute(text("SELECT name, role, scopes FROM api_tokens"))] == [
            ("old-ci", "ci", None)]
    client = empty_app.test_client()
    uploaded = client.post("/models/m/versions", headers={"Authorization": "Bearer old-ci-secret"},
                           data={"artifact": (io.BytesIO(artifact_bytes(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]))),
                                              "m.joblib")})
    assert uploaded.status_code == 201, uploaded.get_json()


def test_0031_gives_every_token_request_and_approval_its_own_name_as_owner(empty_app):
    upgrade(directory=MIGRATIONS, revision="0030")
    with db.engine.begin() as connection:
        connection.execute(text("INSERT INTO api_tokens (name, role, token_hash, created_at) "
                                "VALUES ('old-ci', 'ci', :hash, '2026-11-20 10:00:00')"),
                           {"hash": hashlib.sha256(b"old-ci-secret").hexdigest()})
        connection.execute(text(
            "INSERT INTO models (id, name, description, tags, last_version, created_at, updated_at) "
            "VALUES (1, 'm', '', '{}', 1, '2026-11-20 10:00:00', '2026-11-20 10:00:00')"))
        required = [c for c in inspect(connection).get_columns("versions") if not c["nullable"] and c["default"] is None]
        values = {c["name"]: 1 if c["name"] in ("id", "model_id", "number", "size_bytes") else
                  "{}" if "JSON" in str(c["type"]).upper() else
                  "2026-11-25 10:00:00" if "TIME" in str(c["type"]).upper() else "x" for c in required}
        connection.execute(text(f"INSERT INTO versions ({', '.join(values)}) VALUES "
                                f"({', '.join(':' + name for name in values)})"), values)
        connection.execute(text(
            "INSERT INTO approval_requests (id, model_id, alias, version_id, state, reason, requested_by, requester_role, "
            "opened_at, expires_at, close_reason) VALUES (1, 1, 'production', 1, 'open', '', 'old-ci', 'ci', "
            "'2026-11-25 10:00:00', '2026-11-28 10:00:00', '')"))
        connection.execute(text("INSERT INTO approvals (id, request_id, approver, reason, at) "
                                "VALUES (1, 1, 'alice', '', '2026-11-25 11:00:00')"))

    upgrade(directory=MIGRATIONS)

    with db.engine.begin() as connection:
        assert connection.execute(text("SELECT name, owner FROM api_tokens")).all() == [("old-ci", "old-ci")]
        assert connection.execute(text("SELECT requested_by, requester_owner FROM approval_requests")).all() == [
            ("old-ci", "old-ci")]
        assert connection.execute(text("SELECT approver, owner FROM approvals")).all() == [("alice", "alice")]
    downgrade(directory=MIGRATIONS, revision="0030")
    assert "owner" not in {column["name"] for column in inspect(db.engine).get_columns("api_tokens")}


def test_0032_names_the_policy_each_earlier_approval_was_given_under(empty_app):
    upgrade(directory=MIGRATIONS, revision="0031")
    with db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO models (id, name, description, tags, last_version, created_at, updated_at) "
            "VALUES (1, 'm', '', '{}', 1, '2026-11-20 10:00:00', '2026-11-20 10:00:00')"))
        required = [c for c in inspect(connection).get_columns("versions") if not c["nullable"] and c["default"] is None]
        values = {c["name"]: 1 if c["name"] in ("id", "model_id", "number", "size_bytes") else
                  "{}" if "JSON" in str(c["type"]).upper() else
                  "2026-11-25 10:00:00" if "TIME" in str(c["type"]).upper() else "x" for c in required}
        connection.execute(text(f"INSERT INTO versions ({', '.join(values)}) VALUES "
                                f"({', '.join(':' + name for name in values)})"), values)
        for id, alias, at in ((1, "production", "2026-11-25 09:00:00"), (2, "staging", "2026-11-25 09:30:00"),
                              (3, "production", "2026-11-25 12:00:00")):  # the last came after the approvals
            connection.execute(text(
                "INSERT INTO promotion_events (id, model_id, alias, action, actor, reason, forced, at, prev_hash, hash) "
                "VALUES (:id, 1, :alias, 'policy_set', 'admin', '', :forced, :at, :digest, :digest)"),
                {"id": id, "alias": alias, "at": at, "forced": False, "digest": str(id) * 64})
        for id, alias in ((1, "production"), (2, "canary")):
            connection.execute(text(
                "INSERT INTO approval_requests (id, model_id, alias, version_id, state, reason, requested_by, "
                "requester_owner, requester_role, opened_at, expires_at, close_reason) VALUES (:id, 1, :alias, 1, "
                "'open', '', 'old-ci', 'old-ci', 'ci', '2026-11-25 10:00:00', '2026-11-28 10:00:00', '')"),
                {"id": id, "alias": alias})
            connection.execute(text("INSERT INTO approvals (id, request_id, approver, owner, reason, at) "
                                    "VALUES (:id, :id, 'alice', 'alice', '', '2026-11-25 11:00:00')"), {"id": id})

    upgrade(directory=MIGRATIONS)

    with db.engine.begin() as connection:
        assert connection.execute(text("SELECT id, policy_entry FROM approvals ORDER BY id")).all() == [(1, 1), (2, None)]
    downgrade(directory=MIGRATIONS, revision="0031")
    assert "policy_entry" not in {column["name"] for column in inspect(db.engine).get_columns("approvals")}
