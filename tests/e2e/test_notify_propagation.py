"""On PostgreSQL a move reaches every worker of every replica at once (LISTEN/NOTIFY), not at the next
poll: here the poll is every 150 s (ALIAS_REFRESH_SECONDS=600), so only the notification can explain
the replicas following within the test's deadline. SQLite has no notifications (it keeps polling)."""
import time

import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from bench.harness import server
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from tests.databases import BACKEND, fresh_database
from tests.e2e.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL's notifications: the PostgreSQL pass runs it")

DEADLINE = 30  # seconds: far below the poll's 150 s, far above a notification's milliseconds
PROBES = 12  # new connections per replica and check, so every worker answers some


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    root = tmp_path_factory.mktemp("notify")
    with fresh_database(root) as database_url, \
            server.running(database_url, root, ADMIN_TOKEN, count=2, workers=2, refresh_seconds=600) as both:
        yield both


def versions_answering(live) -> set[int]:
    answers = [requests.post(f"{live.url}/models/n/production/predict", json={"instances": [PROBE_ROW]}, timeout=30)
               for _ in range(PROBES)]
    return {answer.json()["version"] if answer.status_code == 200 else -answer.status_code for answer in answers}


def every_worker_serves(replicas, version: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while any(versions_answering(live) != {version} for live in replicas):
        assert time.monotonic() < deadline, [versions_answering(live) for live in replicas]
        time.sleep(0.1)


def test_moves_made_through_one_replica_reach_every_worker_of_the_other_at_once(replicas):
    first, second = replicas
    for factor in (1, 2):
        assert upload(first, "n", scaled_sum(factor)).status_code == 201

    for version in (1, 2, 1):
        moved = requests.post(f"{first.url}/models/n/versions/{version}/promote", json={}, headers=first.headers, timeout=30)
        assert moved.status_code == 200, moved.text
        every_worker_serves(replicas, version)

    answer = requests.post(f"{second.url}/models/n/production/predict", json={"instances": [PROBE_ROW]}, timeout=30)
    assert answer.json()["predictions"][0] == pytest.approx(expected_prediction(1))


def test_after_its_connection_is_cut_a_listener_reconnects_and_catches_up(replicas):
    first, _ = replicas
    url = make_url(first.env["DATABASE_URL"])
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True) as admin:
        cut = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND query = %s",
            (url.database, "LISTEN registry_changes"),
        ).fetchall()
        assert len(cut) == 4  # one listener per worker: 2 replicas × 2 workers
        moved = requests.post(f"{first.url}/models/n/versions/2/promote", json={}, headers=first.headers, timeout=30)
        assert moved.status_code == 200, moved.text

    every_worker_serves(replicas, 2)  # missed while down: read again on reconnect
