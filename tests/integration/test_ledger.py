"""The ledger proves itself: every history entry is chained to the one before it, a check names the first
that does not hold (changed, removed or added behind the registry's back), and an export checks elsewhere."""
import hashlib
import json
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sklearn.linear_model import LinearRegression
from sqlalchemy import text

from config import BASE_DIR
from registry.db import db, write_transaction
from registry.ledger import FIELDS, GENESIS, entry_hash
from registry.tables import PromotionEvent
from tests.helpers import assert_problem, regression_data, upload_ok


def check_export(lines) -> str:
    """The standalone check docs/ledger.md shows, on an export's lines: the last hash, or an error."""
    previous = "0" * 64
    for line in lines:
        entry = json.loads(line)
        claimed = entry.pop("hash")
        body = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        if entry["prev_hash"] != previous or hashlib.sha256(body).hexdigest() != claimed:
            raise ValueError(f"entry {entry['id']} does not hold")
        previous = claimed
    return previous


@pytest.fixture
def history(app, client, admin):
    """A model whose history has seven entries: promotes, a rollout started and aborted, a rollback, a delete."""
    X, y = regression_data()
    for factor in (1, 2):
        upload_ok(client, admin, "m", LinearRegression().fit(X, y * factor))
    calls = [
        ("post", "/models/m/versions/1/promote", {"reason": "first"}),
        ("post", "/models/m/versions/2/promote", {"reason": "retrain: r2 0.33 vs 0.29 – better"}),
        ("put", "/models/m/aliases/production/rollout",
         {"shadow": {"version": 1, "percent": 12.5}, "reason": "shadow"}),
        ("delete", "/models/m/aliases/production/rollout", {"reason": "enough"}),
        ("post", "/models/m/rollback", {"reason": "v2 over-predicts"}),
        ("post", "/models/m/versions/2/promote", {"alias": "staging"}),
        ("delete", "/models/m/aliases/staging?reason=gone", None),
    ]
    for method, url, body in calls:
        response = getattr(client, method)(url, json=body, headers=admin)
        assert response.status_code in (200, 201), (url, response.get_json())
    return 7


def verify(client, admin) -> dict:
    response = client.get("/audit/verify", headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def execute(app, sql: str, **params) -> None:
    """A statement run straight on the database, behind the registry's back."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text(sql), params)


def test_every_history_entry_is_chained_to_the_one_before_it(app, client, admin, history):
    body = verify(client, admin)

    assert body == {"ok": True, "entries": history, "head": body["head"], "first_broken": None, "state": []}
    with app.app_context():
        rows = db.session.execute(db.select(PromotionEvent).order_by(PromotionEvent.id)).scalars().all()
        assert [row.action for row in rows] == ["promote", "promote", "rollout_start", "rollout_abort", "rollback",
                                                "promote", "delete"]
        assert [row.prev_hash for row in rows] == [GENESIS] + [row.hash for row in rows[:-1]]
        assert rows[-1].hash == body["head"]
        assert rows[2].details["shadow"]["percent"] == 12.5


def test_the_check_names_an_old_entry_edited_in_the_database(app, client, admin, history):
    execute(app, "UPDATE promotion_events SET reason = 'nothing to see' WHERE id = 2")

    body = verify(client, admin)

    assert body["ok"] is False
    assert body["first_broken"]["id"] == 2
    assert body["first_broken"]["kind"] == "promote"
    assert body["first_broken"]["problem"] == "altered"
    assert body["first_broken"]["at"].endswith("Z")
    assert body["entries"] == 1


@pytest.mark.parametrize("column, value", [
    ("to_version", 1), ("actor", "someone else"), ("at", "2020-01-01 00:00:00"), ("forced", True),
    ("details", '{"shadow": {"version": 1, "percent": 99}}'), ("prev_hash", "0" * 64), ("hash", "f" * 64),
])
def test_a_change_to_any_column_of_an_entry_is_named(app, client, admin, history, column, value):
    execute(app, f"UPDATE promotion_events SET {column} = :value WHERE id = 3", value=value)

    assert verify(client, admin)["first_broken"]["id"] == 3


def test_the_check_names_the_entry_after_one_deleted_from_the_middle(app, client, admin, history):
    execute(app, "DELETE FROM promotion_events WHERE id = 4")

    broken = verify(client, admin)["first_broken"]

    assert (broken["id"], broken["problem"]) == (5, "unlinked")
    assert "entry 3" in broken["detail"]


def test_the_check_names_entries_removed_from_the_end(app, client, admin, history):
    execute(app, "DELETE FROM promotion_events WHERE id = 7")

    body = verify(client, admin)

    assert body["first_broken"] == {"id": 7, "at": None, "kind": None, "problem": "truncated",
                                    "detail": body["first_broken"]["detail"]}
    assert body["entries"] == 6


def test_the_check_names_an_entry_inserted_with_a_forged_hash(app, client, admin, history):
    with app.app_context():
        last = db.session.get(PromotionEvent, 7)
        forged = {"id": 8, "at": "2026-11-25T12:00:00.000000Z", "model_id": last.model_id, "alias": "production",
                  "action": "promote", "from_version": 1, "to_version": 2, "reverts_event_id": None,
                  "actor": "admin", "reason": "", "forced": False, "details": None, "prev_hash": last.hash}
    execute(app, "INSERT INTO promotion_events (id, model_id, alias, action, from_version, to_version, actor, reason, "
                 "forced, at, prev_hash, hash) VALUES (8, :model_id, 'production', 'promote', 1, 2, 'admin', '', "
                 ":forced, '2026-11-25 12:00:00', :prev_hash, :hash)",
            model_id=forged["model_id"], forced=False, prev_hash=forged["prev_hash"], hash=entry_hash(forged))

    broken = verify(client, admin)["first_broken"]

    assert (broken["id"], broken["problem"]) == (8, "unrecorded")


def test_an_entry_inserted_in_the_middle_is_named(app, client, admin, history):
    execute(app, "DELETE FROM promotion_events WHERE id = 4")
    execute(app, "INSERT INTO promotion_events (id, model_id, alias, action, from_version, to_version, actor, reason, "
                 "forced, at, prev_hash, hash) SELECT 4, model_id, alias, 'promote', 1, 1, 'admin', '', :forced, at, "
                 "hash, :hash FROM promotion_events WHERE id = 3", forced=False, hash="a" * 64)

    broken = verify(client, admin)["first_broken"]

    assert (broken["id"], broken["problem"]) == (4, "altered")


def test_moves_after_a_break_keep_it_visible(app, client, admin, history):
    execute(app, "DELETE FROM promotion_events WHERE id = 7")
    assert client.post("/models/m/versions/2/promote", json={"alias": "canary"}, headers=admin).status_code == 200

    broken = verify(client, admin)["first_broken"]

    assert (broken["id"], broken["problem"]) == (8, "unlinked")


def test_the_cli_check_exits_1_and_names_the_entry(app, client, admin, history):
    runner = app.test_cli_runner()
    held = runner.invoke(args=["audit", "verify"])
    assert held.exit_code == 0, held.output
    assert held.stdout.startswith(f"ok: {history} entries hold; head ")

    execute(app, "UPDATE promotion_events SET actor = 'mallory' WHERE id = 1")
    broken = runner.invoke(args=["audit", "verify"])

    assert broken.exit_code == 1
    assert broken.stdout.startswith("broken: entry 1 (promote) at ")
    assert " is altered: " in broken.stdout
    assert f"0 entries hold before it; the chain holds up to hash {GENESIS}" in broken.stdout


def test_an_entry_has_one_time_in_the_export_the_check_and_the_cli(app, client, admin, history):
    """Issue 68: the same entry showed in three time formats; now each shows the export's own."""
    exported = json.loads(client.get("/audit/export", headers=admin).get_data(as_text=True).splitlines()[0])["at"]
    execute(app, "UPDATE promotion_events SET actor = 'mallory' WHERE id = 1")

    assert verify(client, admin)["first_broken"]["at"] == exported
    assert f"broken: entry 1 (promote) at {exported} is altered" in app.test_cli_runner().invoke(args=["audit", "verify"]).stdout


def test_an_export_checks_elsewhere_and_ends_at_the_head(app, client, admin, history, tmp_path):
    response = client.get("/audit/export", headers=admin)
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    lines = response.get_data(as_text=True).splitlines()

    assert len(lines) == history
    assert check_export(lines) == verify(client, admin)["head"]
    assert set(json.loads(lines[0])) == {*FIELDS, "hash"}
    cli = app.test_cli_runner().invoke(args=["audit", "export", "--output", str(tmp_path / "ledger.jsonl")])
    assert cli.exit_code == 0, cli.output
    assert (tmp_path / "ledger.jsonl").read_text().splitlines() == lines


def documented_check(folder, lines: list[str]) -> subprocess.CompletedProcess:
    """docs/ledger.md's own standalone check, run on ``lines`` as the reader's ledger.jsonl."""
    document = (BASE_DIR / "docs" / "ledger.md").read_text()
    block = next(code for code in re.findall(r"```python\n(.*?)```", document, re.S) if "ledger.jsonl" in code)
    (folder / "ledger.jsonl").write_text("".join(line + "\n" for line in lines))
    return subprocess.run([sys.executable, "-c", block], cwd=folder, capture_output=True, text=True, timeout=60)


def test_the_documented_check_refuses_an_empty_export_and_an_edited_one(client, admin, history, tmp_path):
    """Issue 68: a failed ``curl -s`` left an empty file, and the check said "the export holds"."""
    lines = client.get("/audit/export", headers=admin).get_data(as_text=True).splitlines()
    held = documented_check(tmp_path, lines)
    assert (held.returncode, held.stdout) == (0, f"the export holds: {history} entries; its last hash is "
                                                 f"{verify(client, admin)['head']}\n")

    empty = documented_check(tmp_path, [])
    assert empty.returncode == 1 and "holds no entry: nothing was checked" in empty.stderr
    assert "holds" not in empty.stdout

    edited = json.loads(lines[1]) | {"reason": "a better story"}
    refused = documented_check(tmp_path, [lines[0], json.dumps(edited), *lines[2:]])
    assert refused.returncode == 1 and refused.stderr.strip() == "entry 2 does not hold"


def test_an_export_edited_on_the_way_fails_its_check(client, admin, history):
    lines = client.get("/audit/export", headers=admin).get_data(as_text=True).splitlines()
    entry = json.loads(lines[1])
    entry["reason"] = "a better story"
    lines[1] = json.dumps(entry)

    with pytest.raises(ValueError, match="entry 2 does not hold"):
        check_export(lines)


@pytest.mark.parametrize("route", ["/audit/verify", "/audit/export"])
def test_the_audit_is_for_admins_only(client, ci, route):
    assert_problem(client.get(route), 401)
    assert_problem(client.get(route, headers=ci), 403, "'admin'")


def test_entries_written_in_one_transaction_chain_in_order(app, client, admin, history):
    with app.app_context(), write_transaction() as session:
        for reason in ("one", "two", "three"):
            session.add(PromotionEvent(model_id=1, alias="x", action="promote", to_version=1, actor="t", reason=reason,
                                       details={"figures": (1, 2.5, float("inf")), 3: "three", "p": float("nan")}))

    assert verify(client, admin)["entries"] == history + 3
    with app.app_context():
        stored = db.session.get(PromotionEvent, history + 3).details
        assert stored == {"figures": [1, 2.5, None], "3": "three", "p": None}


def test_writers_racing_on_different_models_never_fork_the_chain(app, client, admin):
    X, y = regression_data()
    names = [f"racer-{i}" for i in range(4)]
    for name in names:
        for factor in (1, 2):
            upload_ok(client, admin, name, LinearRegression().fit(X, y * factor))
    barrier = threading.Barrier(len(names) + 1)
    done = threading.Event()

    def moves(name):
        racer = app.test_client()
        barrier.wait()
        return [racer.post(f"/models/{name}/versions/{1 + i % 2}/promote", json={}, headers=admin).status_code
                for i in range(6)]

    def checks():
        """The check, again and again while the writers append: it reads one snapshot, so it always holds."""
        checker, verdicts = app.test_client(), []
        barrier.wait()
        while not done.is_set() or not verdicts:
            verdicts.append(verify(checker, admin))
        return verdicts

    with ThreadPoolExecutor(max_workers=len(names) + 1) as pool:
        checking = pool.submit(checks)
        statuses = [status for run in pool.map(moves, names) for status in run]
        done.set()
        verdicts = checking.result()

    assert set(statuses) == {200}
    assert [v for v in verdicts if not v["ok"]] == []
    assert verify(client, admin) == {"ok": True, "entries": 24, "head": verify(client, admin)["head"],
                                     "first_broken": None, "state": []}


def test_every_column_of_the_history_is_covered_by_its_hash(app):
    """A column added to the history must join the canonical form (a new form version), or it could change unseen."""
    columns = {column.name for column in PromotionEvent.__table__.columns}

    assert columns - {"hash"} == set(FIELDS)


def test_token_changes_are_links_of_the_chain_with_their_scopes_and_who_made_them(app, client, admin, history):
    scopes = [{"models": ["team-a-*"], "rights": ["read", "promote"]}]
    assert client.post("/tokens", json={"name": "team-a", "role": "ci", "scopes": scopes, "owner": "alice@example.com"},
                       headers=admin).status_code == 201
    assert client.delete("/tokens/team-a", headers=admin).status_code == 204
    made = app.test_cli_runner().invoke(args=["tokens", "create", "shell-made", "--role", "reader"])
    assert made.exit_code == 0, made.output

    lines = [json.loads(line) for line in client.get("/audit/export", headers=admin).get_data(as_text=True).splitlines()]
    tokens = [(e["action"], e["actor"], e["model_id"], e["alias"], e["details"]) for e in lines if e["model_id"] is None]

    assert tokens == [
        ("token_create", "admin", None, None, {"token": "team-a", "role": "ci", "scopes": scopes,
                                                "owner": "alice@example.com"}),
        ("token_revoke", "admin", None, None, {"token": "team-a", "role": "ci", "scopes": scopes,
                                                "owner": "alice@example.com"}),
        ("token_create", "flask tokens", None, None, {"token": "shell-made", "role": "reader", "scopes": None,
                                                      "owner": "shell-made"}),
    ]
    assert verify(client, admin)["ok"] is True
    assert client.get("/models/m/history", headers=admin).get_json()["items"][0]["action"] != "token_create"


def test_a_token_entry_widened_in_the_database_is_named(app, client, admin, history):
    assert client.post("/tokens", json={"name": "team-a", "role": "ci",
                                        "scopes": [{"models": ["team-a-*"], "rights": ["read"]}]},
                       headers=admin).status_code == 201
    execute(app, "UPDATE promotion_events SET details = :value WHERE action = 'token_create'",
            value='{"token": "team-a", "role": "ci", "scopes": null}')

    broken = verify(client, admin)["first_broken"]

    assert broken["kind"] == "token_create" and broken["problem"] == "altered"


def test_a_token_change_keeps_its_reason_in_the_chain(app, client, admin, history):
    assert client.post("/tokens", json={"name": "team-b", "role": "ci", "reason": "declared state: registry.yaml"},
                       headers=admin).status_code == 201
    assert client.delete("/tokens/team-b", query_string={"reason": "team b left"}, headers=admin).status_code == 204
    assert_problem(client.post("/tokens", json={"name": "team-c", "role": "ci", "reason": "x" * 2_001},
                               headers=admin), 422)

    lines = [json.loads(line) for line in client.get("/audit/export", headers=admin).get_data(as_text=True).splitlines()]

    assert [(e["action"], e["reason"]) for e in lines if e["model_id"] is None] == [
        ("token_create", "declared state: registry.yaml"), ("token_revoke", "team b left")]
    assert verify(client, admin)["ok"] is True
    execute(app, "UPDATE promotion_events SET reason = '' WHERE action = 'token_revoke'")
    assert verify(client, admin)["first_broken"]["kind"] == "token_revoke"  # the reason is under the hash
