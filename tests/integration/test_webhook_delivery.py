"""The deliverer against a real receiver on loopback that verifies every signature."""
import os
import signal
import socket
import subprocess
import time
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import update

from bench.harness.webhook_receiver import Receiver, poll
from config import BASE_DIR
from registry.db import db
from registry.events.claims import claim_due, record_attempt
from registry.events.messages import Message, Outcome
from registry.events.sending import Sender, retry_after_seconds
from registry.events.tables import WebhookSubscription
from tests.helpers import ADMIN_TOKEN, assert_problem, scaled_sum, upload_ok

STARTUP_SECONDS = 120  # a new Python process imports scikit-learn; slow on a busy machine
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAST = {
    "WEBHOOK_ALLOW_PRIVATE": True,
    "WEBHOOK_POLL_SECONDS": 0.05,
    "WEBHOOK_TIMEOUT_SECONDS": 2.0,
    "WEBHOOK_LEASE_SECONDS": 5.0,
    "WEBHOOK_RETRY_BASE_SECONDS": 0.05,
    "WEBHOOK_RETRY_MAX_SECONDS": 0.2,
}


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def make(build_app):
    """``make(**overrides)``: an app with fast webhook settings and its test client."""

    def build(**overrides):
        app = build_app(**{**FAST, **overrides})
        return app, app.test_client()

    return build


def subscribe(client, receiver, endpoint, events=("*",)) -> int:
    response = client.post("/webhooks", json={"url": receiver.url(endpoint), "events": list(events)}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    receiver.trust(endpoint, response.get_json()["secret"])
    return response.get_json()["id"]


def deliveries(client, hook: int) -> list[dict]:
    return client.get(f"/webhooks/{hook}/deliveries", headers=ADMIN).get_json()["items"]


def start(app):
    app.extensions["webhook_deliverer"].start()


def test_uploads_promotes_rollbacks_and_archives_arrive_signed_and_are_logged(make, receiver):
    app, client = make()
    hook = subscribe(client, receiver, "all")
    for factor in (1, 2):
        upload_ok(client, ADMIN, "m", scaled_sum(factor))
    client.post("/models/m/versions/1/promote", json={}, headers=ADMIN)
    client.post("/models/m/versions/2/promote", json={"reason": "better"}, headers=ADMIN)
    client.post("/models/m/rollback", json={}, headers=ADMIN)
    client.delete("/models/m/versions/2", headers=ADMIN)

    start(app)

    poll(lambda: len(receiver.events("all")) == 6)
    assert [r.error for r in receiver.received("all")] == [None] * 6
    payloads = receiver.events("all")
    assert sorted(p["type"] for p in payloads) == ["alias.moved"] * 3 + ["version.archived"] + ["version.created"] * 2
    moves = sorted((p["data"]["history_id"], p["data"]["action"], p["data"]["to_version"]) for p in payloads if p["type"] == "alias.moved")
    assert [m[1:] for m in moves] == [("promote", 1), ("promote", 2), ("rollback", 1)]
    assert all(p["timestamp"].endswith("Z") for p in payloads)
    log = poll(lambda: (items := deliveries(client, hook)) and all(d["status"] == "delivered" for d in items) and items)
    assert {d["event_id"] for d in log} == {r.msg_id for r in receiver.received("all")}
    assert {(d["attempts"], d["last_status_code"], d["next_attempt_at"]) for d in log} == {(1, 200, None)}


def test_a_receiver_that_fails_twice_gets_the_event_with_the_same_webhook_id(make, receiver):
    app, client = make()
    hook = subscribe(client, receiver, "flaky")
    receiver.script("flaky", [500, 503])
    upload_ok(client, ADMIN, "m", scaled_sum(1))

    start(app)

    poll(lambda: receiver.events("flaky"))
    assert [r.status for r in receiver.received("flaky")] == [500, 503, 200]
    assert len({r.msg_id for r in receiver.received("flaky")}) == 1
    [delivery] = poll(lambda: [d for d in deliveries(client, hook) if d["status"] == "delivered"])
    assert delivery["attempts"] == 3
    detail = client.get(f"/webhooks/{hook}/deliveries/{delivery['id']}", headers=ADMIN).get_json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 503, 200]


@pytest.mark.parametrize("status", [408, 429, 502])
def test_timeouts_throttling_and_server_errors_are_retried(make, receiver, status):
    app, client = make()
    subscribe(client, receiver, "busy")
    receiver.script("busy", [status])
    upload_ok(client, ADMIN, "m", scaled_sum(1))

    start(app)

    poll(lambda: receiver.events("busy"))
    assert [r.status for r in receiver.received("busy")] == [status, 200]


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_other_client_errors_and_redirects_are_final_failures(make, receiver, status):
    app, client = make()
    hook = subscribe(client, receiver, "gone")
    receiver.script("gone", [status])
    upload_ok(client, ADMIN, "m", scaled_sum(1))

    start(app)

    [delivery] = poll(lambda: [d for d in deliveries(client, hook) if d["status"] == "failed"])
    assert (delivery["attempts"], delivery["last_status_code"], delivery["next_attempt_at"]) == (1, status, None)
    assert len(receiver.received("gone")) == 1


def test_a_receiver_that_never_answers_well_is_given_up_on_after_the_retry_window(make, receiver):
    app, client = make(WEBHOOK_RETRY_WINDOW_SECONDS=2.0)
    hook = subscribe(client, receiver, "down")
    receiver.script("down", [500] * 1000)
    upload_ok(client, ADMIN, "m", scaled_sum(1))

    start(app)

    [delivery] = poll(lambda: [d for d in deliveries(client, hook) if d["status"] == "failed"])
    assert delivery["attempts"] >= 2 and delivery["last_error"].startswith(f"gave up after {delivery['attempts']} attempts")
    assert len(receiver.received("down")) == delivery["attempts"]
    assert len({r.msg_id for r in receiver.received("down")}) == 1


def test_network_errors_are_retried_and_recorded(make, receiver):
    with socket.socket() as sock:  # a port that refuses connections
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/nobody"
    app, client = make(WEBHOOK_RETRY_WINDOW_SECONDS=2.0)
    hook = client.post("/webhooks", json={"url": closed, "events": ["*"]}, headers=ADMIN).get_json()["id"]
    upload_ok(client, ADMIN, "m", scaled_sum(1))

    start(app)

    [delivery] = poll(lambda: [d for d in deliveries(client, hook) if d["status"] == "failed"])
    assert delivery["attempts"] >= 2 and delivery["last_status_code"] is None
    assert "connection" in delivery["last_error"].lower()


def test_a_hanging_receiver_delays_neither_another_receiver_nor_requests(make, receiver):
    app, client = make(WEBHOOK_TIMEOUT_SECONDS=30.0, WEBHOOK_LEASE_SECONDS=120.0)
    stuck = subscribe(client, receiver, "stuck")
    subscribe(client, receiver, "fine")
    hold = receiver.hang("stuck")
    start(app)

    for factor in (1, 2, 3):
        upload_ok(client, ADMIN, "m", scaled_sum(factor))

    poll(lambda: len(receiver.events("fine")) == 3)
    # The stuck receiver still holds its first request (its 30 s timeout has not run out), one at a time.
    assert [d["attempts"] for d in deliveries(client, stuck)] == [0, 0, 0]
    assert receiver.received("stuck") == []
    assert client.get("/models/m/versions", headers=ADMIN).status_code == 200
    hold.release()
    poll(lambda: len(receiver.events("stuck")) == 3)


def test_a_delivery_reaches_its_receiver_whatever_the_order_of_claims_between_two_deliverers(make, receiver):
    app_a, client = make()
    app_b, _ = make()
    subscribe(client, receiver, "shared")
    for factor in range(1, 6):
        upload_ok(client, ADMIN, "m", scaled_sum(factor))

    start(app_a)
    start(app_b)

    poll(lambda: len({p["data"]["version"] for p in receiver.events("shared")}) == 5)
    assert all(r.error is None for r in receiver.received("shared"))


def test_concurrent_claimers_never_claim_the_same_delivery_and_take_one_per_subscription(make, receiver):
    apps = [make()[0] for _ in range(4)]
    client = apps[0].test_client()
    for endpoint in range(6):
        subscribe(client, receiver, f"e{endpoint}")
    for factor in (1, 2, 3):
        upload_ok(client, ADMIN, "m", scaled_sum(factor))
    claimed: list[list] = [[] for _ in apps]
    barrier = threading.Barrier(len(apps))

    def claimer(index):
        with apps[index].app_context():
            barrier.wait()
            for _ in range(5):
                claimed[index] += claim_due(3, lease_seconds=60)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(len(apps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ids = [c.delivery_id for claims in claimed for c in claims]
    assert len(ids) == len(set(ids)) == 6
    assert sorted(c.message.url for claims in claimed for c in claims) == sorted(receiver.url(f"e{i}") for i in range(6))


def test_a_crashed_claimers_delivery_is_sent_after_its_lease_and_its_late_record_is_ignored(make, receiver):
    crashed, client = make()
    hook = subscribe(client, receiver, "lease")
    upload_ok(client, ADMIN, "m", scaled_sum(1))
    with crashed.app_context():
        [claim] = claim_due(1, lease_seconds=0.3)
    survivor, _ = make()

    start(survivor)

    [payload] = poll(lambda: receiver.events("lease"))
    assert receiver.received("lease")[0].msg_id == claim.message.msg_id
    [delivery] = poll(lambda: [d for d in deliveries(client, hook) if d["status"] == "delivered"])
    with crashed.app_context():
        record_attempt(claim, Outcome(500, None, 1), crashed.extensions["webhook_deliverer"].settings.retry)
    assert deliveries(client, hook) == [delivery]


def test_delivery_refuses_a_private_address_unless_allowed_even_when_the_subscription_was_accepted(make, receiver):
    _, client = make()  # allowed when subscribing, as if the host resolved publicly then
    hook = subscribe(client, receiver, "inside")
    upload_ok(client, ADMIN, "m", scaled_sum(1))
    strict, _ = make(WEBHOOK_ALLOW_PRIVATE=False)

    start(strict)

    [delivery] = poll(lambda: [d for d in deliveries(client, hook) if d["attempts"] >= 1])
    assert "127.0.0.1" in delivery["last_error"] and "loopback" in delivery["last_error"]
    assert delivery["status"] == "pending"  # DNS may change back: retried like a network error
    assert receiver.received("inside") == []


def test_ping_and_redeliver_send_signed_requests_with_the_events_id(make, receiver):
    app, client = make()
    hook = subscribe(client, receiver, "ops")
    upload_ok(client, ADMIN, "m", scaled_sum(1))
    start(app)
    [first] = poll(lambda: receiver.events("ops"))
    [delivered] = poll(lambda: [d for d in deliveries(client, hook) if d["status"] == "delivered"])

    client.post(f"/webhooks/{hook}/deliveries/{delivered['id']}/redeliver", headers=ADMIN)
    client.post(f"/webhooks/{hook}/ping", headers=ADMIN)

    poll(lambda: len(receiver.events("ops")) == 3)
    received = receiver.received("ops")
    assert received[1].msg_id == received[0].msg_id or received[2].msg_id == received[0].msg_id
    [ping] = receiver.events("ops", "ping")
    assert ping["data"] == {"webhook_id": hook, "url": receiver.url("ops")}
    assert first == [p for p in receiver.events("ops") if p["type"] == "version.created"][1]


@pytest.mark.parametrize("enabled", [True, False])
def test_a_worker_starts_its_deliverer_unless_the_deployment_delivers_separately(make, enabled):
    app, client = make(WEBHOOK_DELIVER_IN_WORKERS=enabled)

    client.get("/healthz")

    assert app.extensions["webhook_deliverer"].started is enabled


def test_the_deliver_command_delivers_until_it_is_told_to_stop(make, receiver, database_url, tmp_path):
    _, client = make()
    hook = subscribe(client, receiver, "cli")
    upload_ok(client, ADMIN, "m", scaled_sum(1))
    env = {**os.environ, "DATABASE_URL": database_url, "ARTIFACT_ROOT": str(tmp_path / "cli-artifacts"),
           "PYTHONPATH": str(BASE_DIR), **{k: str(v) for k, v in FAST.items()}}

    command = subprocess.Popen([str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "webhooks", "deliver"],
                               cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        [payload] = poll(lambda: receiver.events("cli"), timeout=STARTUP_SECONDS)
        poll(lambda: [d for d in deliveries(client, hook) if d["status"] == "delivered"])
    finally:
        command.send_signal(signal.SIGTERM)
        output = command.communicate(timeout=60)[0].decode()
    assert payload["type"] == "version.created"
    assert command.returncode == 0, output


@pytest.mark.parametrize("asked, expected", [(120, 120), (5, None), (10_000, 600)])
def test_a_receivers_retry_after_sets_the_next_attempt_within_the_longest_delay(make, receiver, asked, expected):
    app, client = make(WEBHOOK_RETRY_BASE_SECONDS=10.0, WEBHOOK_RETRY_MAX_SECONDS=600.0)
    hook = subscribe(client, receiver, "slow-down")
    upload_ok(client, ADMIN, "m", scaled_sum(1))
    with app.app_context():
        [claim] = claim_due(1, lease_seconds=30)
        record_attempt(claim, Outcome(429, None, 1, asked), app.extensions["webhook_deliverer"].settings.retry)
    [delivery] = deliveries(client, hook)
    waits = (datetime.fromisoformat(delivery["next_attempt_at"]) - datetime.now(timezone.utc)).total_seconds()
    if expected is None:  # asked for less than the policy's own delay (5 to 10 s after one attempt): the policy's
        assert 4 <= waits <= 10
    else:
        assert expected - 5 <= waits <= expected


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Mon, 23 Nov 2026 09:05:00 GMT", now) == 300
    assert retry_after_seconds("Mon, 23 Nov 2026 08:55:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None


def test_a_rotated_secret_signs_beside_the_old_one_until_its_grace_ends(make, receiver):
    app, client = make()
    hook = subscribe(client, receiver, "rotating")  # the receiver knows the first secret only
    rotated = client.post(f"/webhooks/{hook}/rotate-secret", json={"grace_hours": 1}, headers=ADMIN)
    assert rotated.status_code == 200
    second = rotated.get_json()["secret"]
    assert second.startswith("whsec_") and rotated.get_json()["previous_secret_expires_at"].endswith("Z")
    assert "secret" not in client.get(f"/webhooks/{hook}", headers=ADMIN).get_json()
    start(app)

    def pinged(count: int):
        assert client.post(f"/webhooks/{hook}/ping", headers=ADMIN).status_code == 202
        return poll(lambda: len(receiver.received("rotating")) == count and receiver.received("rotating"))[-1]

    assert pinged(1).error is None  # verified with the old secret
    receiver.trust("rotating", second)
    assert pinged(2).error is None  # and with the new one
    third = client.post(f"/webhooks/{hook}/rotate-secret", json={"grace_hours": 0}, headers=ADMIN).get_json()["secret"]
    assert pinged(3).error is not None  # no grace: the second secret signs no more
    receiver.trust("rotating", third)
    assert pinged(4).error is None


def test_a_rotation_takes_a_grace_period_of_up_to_thirty_days(make):
    _, client = make()
    response = client.post("/webhooks", json={"url": "https://93.184.215.14/r", "events": ["*"]}, headers=ADMIN)
    hook = response.get_json()["id"]
    assert_problem(client.post(f"/webhooks/{hook}/rotate-secret", json={"grace_hours": 721}, headers=ADMIN), 422, "grace_hours")
    assert client.post(f"/webhooks/{hook}/rotate-secret", headers=ADMIN).status_code == 200  # 24 h by default
    assert_problem(client.post("/webhooks/999/rotate-secret", headers=ADMIN), 404, "no webhook subscription")


class Trickler:
    """A receiver that answers one byte every ``pause`` seconds: no read ever waits past the timeout."""

    def __init__(self, pause: float = 0.3):
        self.pause, self.cut = pause, threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        connection, _ = self._server.accept()
        connection.recv(65536)
        try:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + b"X-Slow: " + b"." * 300 + b"\r\n\r\n":
                connection.sendall(bytes([byte]))
                time.sleep(self.pause)
        except OSError:
            self.cut.set()  # the sender shut its socket
        finally:
            connection.close()
            self._server.close()


def test_a_receiver_trickling_its_answer_is_cut_at_the_attempts_deadline():
    trickler = Trickler()
    sender = Sender(timeout_seconds=2.0, allow_private=True, deadline_seconds=1.0)

    outcome = sender.send(Message("msg_1", "{}", trickler.url, ("whsec_" + "A" * 32,)))

    assert outcome.status_code is None and outcome.error == "deadline: no answer within 1 s"
    assert outcome.retryable
    assert trickler.cut.wait(10)  # the trickler saw its connection go, long before its 100 s answer


def test_an_endpoint_failing_five_times_in_a_row_is_paused_and_a_success_resets_it(make, receiver):
    app, client = make(WEBHOOK_RETRY_BASE_SECONDS=10.0, WEBHOOK_RETRY_MAX_SECONDS=600.0)
    dead = subscribe(client, receiver, "dead")
    for factor in range(1, 7):
        upload_ok(client, ADMIN, "m", scaled_sum(factor))  # six events, six deliveries to "dead"
    policy = app.extensions["webhook_deliverer"].settings.retry

    with app.app_context():
        for _ in range(5):
            [claim] = claim_due(1, lease_seconds=30)  # each failed delivery backs off: the next one is due
            record_attempt(claim, Outcome(None, "connection error: refused", 1), policy)
        assert claim_due(1, lease_seconds=30) == []  # the sixth is due, but the endpoint is paused
    paused = client.get(f"/webhooks/{dead}", headers=ADMIN).get_json()
    assert paused["failures_in_a_row"] == 5
    waits = (datetime.fromisoformat(paused["paused_until"]) - datetime.now(timezone.utc)).total_seconds()
    assert 5 < waits <= 10  # the pause starts at the base delay and doubles from there

    healthy = subscribe(client, receiver, "healthy")
    with app.app_context():
        db.session.execute(update(WebhookSubscription).where(WebhookSubscription.id == dead).values(
            paused_until=datetime.now(timezone.utc) - timedelta(seconds=1)))  # the pause is over
        db.session.commit()
        upload_ok(client, ADMIN, "m", scaled_sum(7))
        claims = claim_due(2, lease_seconds=30)
        assert {c.message.url for c in claims} == {receiver.url("dead"), receiver.url("healthy")}
        for claim in claims:
            record_attempt(claim, Outcome(200, None, 1), policy)
    assert client.get(f"/webhooks/{dead}", headers=ADMIN).get_json()["failures_in_a_row"] == 0
    assert client.get(f"/webhooks/{healthy}", headers=ADMIN).get_json()["paused_until"] is None


def test_a_graceful_stop_sends_what_is_due_even_when_its_wake_up_came_too_late(make, receiver, monkeypatch):
    app, client = make(WEBHOOK_POLL_SECONDS=600.0)  # no poll would ever find it
    subscribe(client, receiver, "last")
    deliverer = app.extensions["webhook_deliverer"]
    start(app)
    poll(lambda: deliverer._pruned_at is not None)  # its first poll has passed: it waits for a wake-up now
    monkeypatch.setattr(deliverer, "wake", lambda: None)  # the wake-up arrives as the worker stops: never acted on
    upload_ok(client, ADMIN, "m", scaled_sum(1))

    deliverer.stop(wait=True)

    assert [p["type"] for p in receiver.events("last")] == ["version.created"]
