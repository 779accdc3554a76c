"""Webhooks from the real service (gunicorn, several workers) to a real receiver on loopback.

Every request the receiver gets is verified with ``standardwebhooks.Webhook(secret).verify``.
"""
import os
import socket
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
import requests

from bench.harness import server
from bench.harness.models import scaled_sum, upload
from bench.harness.traffic import move
from bench.harness.webhook_receiver import Receiver, poll
from tests.databases import fresh_database
from tests.e2e.conftest import ADMIN_TOKEN

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SETTINGS = {
    "WEBHOOK_ALLOW_PRIVATE": "1",
    "WEBHOOK_POLL_SECONDS": "0.1",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.1",
    "WEBHOOK_RETRY_MAX_SECONDS": "0.5",
}
DEADLINE_SECONDS = 60


@pytest.fixture(scope="module")
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One instance with three workers; sends time out after 60 s, longer than the hanging receiver test takes."""
    root = tmp_path_factory.mktemp("webhooks")
    env = {**SETTINGS, "WEBHOOK_TIMEOUT_SECONDS": "60", "WEBHOOK_LEASE_SECONDS": "150"}
    with fresh_database(root) as url, server.running(url, root, ADMIN_TOKEN, env=env) as (instance,):
        yield instance


def subscribe(live, receiver, endpoint: str, events=("*",)) -> int:
    response = requests.post(f"{live.url}/webhooks", json={"url": receiver.url(endpoint), "events": list(events)},
                             headers=live.headers, timeout=30)
    assert response.status_code == 201, response.text
    receiver.trust(endpoint, response.json()["secret"])
    return response.json()["id"]


def deliveries(live, hook: int) -> list[dict]:
    response = requests.get(f"{live.url}/webhooks/{hook}/deliveries", params={"per_page": 500}, headers=live.headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def of_model(receiver, endpoint: str, model: str) -> list[dict]:
    return [p for p in receiver.events(endpoint) if p["data"].get("model") == model]


def uploaded(live, model: str, factor: int) -> int:
    response = upload(live, model, scaled_sum(factor))
    assert response.status_code == 201, response.text
    return response.json()["version"]


def test_uploads_promotes_and_rollbacks_arrive_signed_from_the_service(live, receiver):
    subscribe(live, receiver, "all")
    for factor in (1, 2):
        uploaded(live, "story", factor)
    move(live, "promote", "story", 1)
    move(live, "promote", "story", 2)
    move(live, "rollback", "story")

    events = poll(lambda: len(got := of_model(receiver, "all", "story")) >= 5 and got, timeout=DEADLINE_SECONDS)

    assert [r.error for r in receiver.received("all")] == [None] * len(receiver.received("all"))
    assert sorted((e["data"]["version"],) for e in events if e["type"] == "version.created") == [(1,), (2,)]
    moves = sorted((e["data"]["history_id"], e["data"]["action"], e["data"]["from_version"], e["data"]["to_version"])
                   for e in events if e["type"] == "alias.moved")
    assert [m[1:] for m in moves] == [("promote", None, 1), ("promote", 1, 2), ("rollback", 2, 1)]


def test_a_receiver_that_fails_twice_still_gets_the_event(live, receiver):
    hook = subscribe(live, receiver, "flaky", events=["version.created"])
    receiver.script("flaky", [500, 500])

    uploaded(live, "flaky", 1)

    [event] = poll(lambda: of_model(receiver, "flaky", "flaky"), timeout=DEADLINE_SECONDS)
    assert event["type"] == "version.created"
    assert [r.status for r in receiver.received("flaky")] == [500, 500, 200]
    assert len({r.msg_id for r in receiver.received("flaky")}) == 1
    [delivery] = poll(lambda: [d for d in deliveries(live, hook) if d["status"] == "delivered"])
    assert (delivery["attempts"], delivery["event_id"]) == (3, receiver.received("flaky")[0].msg_id)


def test_a_hanging_receiver_delays_neither_another_receiver_nor_any_request(live, receiver):
    hold = receiver.hang("stuck")
    stuck = subscribe(live, receiver, "stuck", events=["version.created", "alias.moved"])
    subscribe(live, receiver, "quick", events=["version.created", "alias.moved"])

    for factor in (1, 2, 3):
        uploaded(live, "hang", factor)
    move(live, "promote", "hang", 3)
    assert requests.get(f"{live.url}/models/hang/versions", timeout=30).status_code == 200

    poll(lambda: len(of_model(receiver, "quick", "hang")) == 4, timeout=DEADLINE_SECONDS)
    # Meanwhile the stuck receiver has not answered once (its sends time out only after 60 s).
    assert receiver.received("stuck") == []
    assert {d["attempts"] for d in deliveries(live, stuck)} == {0}
    hold.release()
    poll(lambda: len(of_model(receiver, "stuck", "hang")) == 4, timeout=DEADLINE_SECONDS)
    requests.delete(f"{live.url}/webhooks/{stuck}", headers=live.headers, timeout=30)


def test_the_documented_receiver_verifies_and_prints_what_the_service_sends(live, tmp_path):
    port = server.free_port()
    response = requests.post(f"{live.url}/webhooks", json={"url": f"http://127.0.0.1:{port}/", "events": ["alias.moved"]},
                             headers=live.headers, timeout=30)
    script = tmp_path / "receiver.py"
    script.write_text(_python_block(DOCS.read_text(), "receiver.py"))
    env = {**os.environ, "WEBHOOK_SECRET": response.json()["secret"], "PORT": str(port)}
    with open(tmp_path / "out.txt", "wb") as out:
        process = subprocess.Popen([sys.executable, str(script)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        uploaded(live, "documented", 1)
        move(live, "promote", "documented", 1)
        line = poll(lambda: [l for l in (tmp_path / "out.txt").read_text().splitlines() if "alias.moved" in l],
                    timeout=DEADLINE_SECONDS)[0]
    finally:
        process.terminate()
        process.wait()
    assert line.startswith("msg_") and "'model': 'documented'" in line and "'to_version': 1" in line
    [delivery] = poll(lambda: [d for d in deliveries(live, response.json()["id"]) if d["status"] == "delivered"])
    assert delivery["last_status_code"] == 204


def test_an_event_survives_kill_9_of_the_whole_server_right_after_the_promote(tmp_path):
    env_extra = {**SETTINGS, "WEBHOOK_TIMEOUT_SECONDS": "2", "WEBHOOK_LEASE_SECONDS": "5"}
    with Receiver() as receiver, fresh_database(tmp_path) as url:
        env = server.service_env(url, tmp_path / "artifacts", ADMIN_TOKEN, **env_extra)
        server.migrate(env)
        first = server.start(env, tmp_path, workers=2)
        try:
            uploaded(first, "crash", 1)
            hold = receiver.hang("moves")  # nothing is acknowledged before the kill
            subscribe(first, receiver, "moves", events=["alias.moved"])
            promoted = move(first, "promote", "crash", 1)
            poll(hold.arrived.is_set)  # the hardest moment: a worker has claimed the delivery and is sending it
            _kill_9_master_and_workers(first)
        finally:
            first.stop()
        hold.release(503)  # a request held across the kill is answered to a dead socket: no ack

        second = server.start(env, tmp_path, workers=2)
        try:
            [event, *_] = poll(lambda: of_model(receiver, "moves", "crash"), timeout=DEADLINE_SECONDS)
            assert event["data"]["history_id"] == promoted["event_id"] and event["data"]["to_version"] == 1
            statuses = [r.status for r in receiver.received("moves")]
            assert statuses[0] == 503 and 200 in statuses  # held across the kill, then sent again after the lease
            assert len({r.msg_id for r in receiver.received("moves")}) == 1  # the same webhook-id every time
        finally:
            second.stop()


def test_two_replicas_deliver_every_event_and_duplicates_share_their_webhook_id(live, receiver, tmp_path):
    second = server.start(live.env, tmp_path, workers=2)  # a second replica on the same database
    try:
        replicas = [live, second]
        hook = subscribe(second, receiver, "both", events=["version.created", "alias.moved"])
        for factor in range(1, 7):
            uploaded(replicas[factor % 2], "twins", factor)
        for number in (2, 4, 6):
            move(replicas[number // 2 % 2], "promote", "twins", number)
        move(second, "rollback", "twins")

        log = poll(lambda: (items := deliveries(live, hook)) and all(d["status"] == "delivered" for d in items) and items,
                   timeout=DEADLINE_SECONDS)
    finally:
        second.stop()
    assert len(log) == 10
    by_id = defaultdict(list)
    for request in receiver.received("both"):
        assert request.error is None
        by_id[request.msg_id].append(request.payload)
    assert set(by_id) == {d["event_id"] for d in log}
    assert all(len({str(p) for p in payloads}) == 1 for payloads in by_id.values())


def _kill_9_master_and_workers(live) -> None:
    """SIGKILL gunicorn's master and every worker at once, as a power cut would."""
    master = live.process.pid
    workers = [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    for pid in [master, *workers]:
        os.kill(pid, signal.SIGKILL)
    live.process.wait()
    poll(lambda: not any(_alive(pid) for pid in workers), timeout=DEADLINE_SECONDS)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except FileNotFoundError:
        return False


def _python_block(markdown: str, marker: str) -> str:
    """The fenced python block of ``markdown`` whose first line names ``marker``."""
    blocks = markdown.split("```python\n")[1:]
    return next(b.split("```", 1)[0] for b in blocks if marker in b.splitlines()[0])


class BadEndpoint:
    """A TCP endpoint on loopback that never answers (``trickle=False``) or answers a byte a second."""

    def __init__(self, trickle: bool):
        self._trickle = trickle
        self._server = socket.create_server(("127.0.0.1", 0))
        self._open: list[socket.socket] = []
        self.connections = 0
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/hook"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(connection)
            if self._trickle:
                threading.Thread(target=self._dribble, args=(connection,), daemon=True).start()

    def _dribble(self, connection: socket.socket) -> None:
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"." * 1000:
                connection.sendall(bytes([byte]))
                time.sleep(1)
        except OSError:
            pass  # the sender gave up on it

    def close(self) -> None:
        self._server.close()
        for connection in self._open:
            connection.close()


def test_a_silent_and_a_trickling_endpoint_delay_no_healthy_one(tmp_path, receiver):
    silent, trickling = BadEndpoint(trickle=False), BadEndpoint(trickle=True)
    env = {**SETTINGS, "WEBHOOK_TIMEOUT_SECONDS": "2", "WEBHOOK_LEASE_SECONDS": "10", "WEBHOOK_THREADS": "2"}
    try:
        with fresh_database(tmp_path) as url, server.running(url, tmp_path, ADMIN_TOKEN, workers=2, env=env) as (live,):
            for bad in (silent, trickling):
                response = requests.post(f"{live.url}/webhooks", json={"url": bad.url, "events": ["*"]},
                                         headers=live.headers, timeout=30)
                assert response.status_code == 201, response.text
            subscribe(live, receiver, "healthy-beside-bad-ones", events=["version.created"])
            for factor in range(1, 31):
                uploaded(live, "busy", factor)

            created = poll(lambda: len(of_model(receiver, "healthy-beside-bad-ones", "busy")) >= 30 and
                           of_model(receiver, "healthy-beside-bad-ones", "busy"), timeout=DEADLINE_SECONDS)

            def bad_ones_failed():  # the trickling attempt ends only at its deadline
                hooks = requests.get(f"{live.url}/webhooks", headers=live.headers, timeout=30).json()["items"]
                bad = [h for h in hooks if h["url"] in (silent.url, trickling.url)]
                return len(bad) == 2 and all(h["failures_in_a_row"] >= 1 for h in bad)

            poll(bad_ones_failed, timeout=DEADLINE_SECONDS)
    finally:
        silent.close()
        trickling.close()
    assert sorted(e["data"]["version"] for e in created) == list(range(1, 31))
    assert silent.connections >= 1 and trickling.connections >= 1
