"""The prediction log under real gunicorn workers: answers are logged from every worker; with the
database stalled, predictions keep answering while the workers' queues fill and drop (counted);
a worker killed with a full queue loses at most what it held, and nothing is half-written; one worker
sweeps the served versions for /metrics, and another takes over when it dies."""
import os
import signal
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone

import psutil
import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.harness import server
from bench.harness.models import PROBE_ROW, scaled_sum, upload
from bench.harness.traffic import move
from registry.process.metric_files import FLUSH_SECONDS
from tests.databases import BACKEND, fresh_database
from tests.e2e.conftest import ADMIN_TOKEN
from tests.helpers import wait_for

WORKERS = 2
QUEUE = 40  # each worker holds at most this many entries for its writer
SWEEP_SECONDS = 1  # the monitoring sweep's period: its lease runs out 3 periods after its holder died
DEADLINE = 60  # seconds: a bound on waiting for the log to drain, so a broken server fails the test


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("prediction-log")
    with fresh_database(root) as database_url, server.running(
            database_url, root, ADMIN_TOKEN, workers=WORKERS,
            env={"PREDICTION_LOG_SAMPLE": 1, "PREDICTION_LOG_QUEUE": QUEUE, "MONITOR_SECONDS": SWEEP_SECONDS}) as (live,):
        assert upload(live, "logged", scaled_sum(1)).status_code == 201
        move(live, "promote", "logged", 1)
        yield live, database_url


def predict(live, session, request_id: str) -> int:
    response = session.post(f"{live.url}/models/logged/production/predict", json={"instances": [PROBE_ROW]},
                            headers={"X-Request-ID": request_id}, timeout=60)
    return response.status_code


def logged(live) -> list[dict]:
    """Every logged item, all pages."""
    items, cursor = [], None
    while True:
        query = f"?limit=1000&cursor={cursor}" if cursor else "?limit=1000"
        page = requests.get(f"{live.url}/models/logged/predictions{query}", headers=live.headers, timeout=30).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def counters(live) -> dict[str, float]:
    text = requests.get(f"{live.url}/metrics", timeout=30).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def settled_count(live) -> int:
    """The number of logged items once it stops changing (each writer writes every 0.2 s)."""
    seen = []

    def stable():
        seen.append(len(logged(live)))
        time.sleep(3 * 0.2)
        return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3] and seen[-1]

    wait_for(stable, "the prediction log to stop growing", DEADLINE)
    return seen[-1]


@contextmanager
def stalled(database_url: str):
    """The prediction log's table locked against writers, as a database under a long migration would."""
    url = make_url(database_url)
    if BACKEND == "postgresql":
        with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as connection:
            connection.execute("LOCK TABLE prediction_log IN EXCLUSIVE MODE")
            yield
            connection.rollback()
    else:
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")  # the one write lock: every writer waits for it
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()


def test_answers_from_every_worker_are_logged_once_each(live):
    live, _ = live
    session = requests.Session()
    ids = [f"plain-{i}" for i in range(60)]
    assert {predict(live, requests.Session() if i % 2 else session, request_id) for i, request_id in enumerate(ids)} == {200}
    wait_for(lambda: {item["request_id"] for item in logged(live)} >= set(ids), "every answer to be logged", DEADLINE)
    items = [item for item in logged(live) if item["request_id"].startswith("plain-")]
    assert sorted(item["request_id"] for item in items) == sorted(ids)  # once each
    assert all(item["inputs"] == [PROBE_ROW] and item["outputs"]["predictions"] for item in items)


def test_a_stranger_resending_an_id_gets_no_label_and_bad_labels_are_refused_per_item(live):
    """Issue 40, items 6, 8 and 9 under real workers: labels by the admin's token, predictions anonymous."""
    live, _ = live
    victim, stranger = requests.Session(), requests.Session()
    assert predict(live, victim, "order-9001") == 200
    assert predict(live, stranger, "order-9001") == 200
    own = victim.post(f"{live.url}/models/logged/production/predict", json={"instances": [PROBE_ROW]}, timeout=60)
    server_id = own.headers["X-Request-ID"]
    hostile = stranger.post(f"{live.url}/models/logged/production/predict", json={"instances": [PROBE_ROW]},
                            headers={"X-Request-ID": '=HYPERLINK("x")<script>'}, timeout=60)
    assert hostile.headers["X-Request-ID"] != '=HYPERLINK("x")<script>'
    wait_for(lambda: sum(item["request_id"] in ("order-9001", server_id) for item in logged(live)) == 3,
             "the three answers to be logged", DEADLINE)
    body = ('{"items": [{"request_id": "order-9001", "label": 1.0}, {"request_id": "%s", "label": NaN},'
            ' {"request_id": "%s", "label": 1e400}, {"request_id": "%s", "label": 2.5}]}' % ((server_id,) * 3))

    response = requests.post(f"{live.url}/models/logged/feedback", data=body, timeout=30,
                             headers={**live.headers, "Content-Type": "application/json"})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["applied"] == 1 and [(e["index"], e["status"]) for e in answer["errors"]] == [(0, 409), (1, 422), (2, 422)]
    labels = {(item["request_id"], item["label"]) for item in logged(live) if item["request_id"] in ("order-9001", server_id)}
    assert labels == {("order-9001", None), (server_id, 2.5)}


def test_a_stalled_database_drops_and_counts_and_a_killed_worker_loses_at_most_its_queue(live):
    live, database_url = live
    before_items = len(logged(live))
    before = counters(live)
    answered = []

    def client(k: int) -> None:
        session = requests.Session()
        for i in range(100):
            if predict(live, session, f"stall-{k}-{i}") == 200:
                answered.append(f"stall-{k}-{i}")

    with stalled(database_url):
        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(answered) == 400  # the stalled log never held a prediction up
        time.sleep(2 * FLUSH_SECONDS)  # every worker's counters reach its metrics file (flushed each second)
        victim = psutil.Process(live.process.pid).children()[0]
        os.kill(victim.pid, signal.SIGKILL)  # with its queue full
    server.wait_serving(live)  # gunicorn has started a worker in its place
    after_count = settled_count(live) - before_items
    after = counters(live)

    items = [item for item in logged(live) if item["request_id"].startswith("stall-")]
    assert len(items) == after_count and len({item["request_id"] for item in items}) == len(items)
    assert {item["request_id"] for item in items} <= set(answered)
    assert all(item["inputs"] == [PROBE_ROW] and item["outputs"]["predictions"] for item in items)  # none half-written
    dropped = after["registry_prediction_log_dropped_total"] - before["registry_prediction_log_dropped_total"]
    assert dropped > 0  # the queues filled while the database stalled, and it was counted
    lost_uncounted = len(answered) - len(items) - dropped
    # The killed worker held at most a full queue and the batch its writer had taken from it.
    assert 0 <= lost_uncounted <= 2 * QUEUE, (len(answered), len(items), dropped)


def lease_holder(database_url: str) -> str | None:
    """Who holds the monitoring sweep's lease, unless it ran out."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT holder, expires_at FROM leases WHERE name = 'monitoring'")).all()
    finally:
        engine.dispose()
    if not rows:
        return None
    holder, expires_at = rows[0]
    if isinstance(expires_at, str):  # SQLite hands back the text it stored
        expires_at = datetime.fromisoformat(expires_at)
    return holder if expires_at.replace(tzinfo=None) > datetime.now(timezone.utc).replace(tzinfo=None) else None


def swept_requests(live) -> float | None:
    text_ = requests.get(f"{live.url}/metrics", timeout=30).text
    found = [s.value for f in text_string_to_metric_families(text_) for s in f.samples
             if s.name == "registry_model_logged_requests" and s.labels == {"model": "logged", "version": "1"}]
    return found[0] if found else None


def test_one_worker_sweeps_for_every_worker_and_another_takes_over_when_it_dies(live):
    live, database_url = live

    def held_by_a_worker() -> int | None:
        """The pid of the live worker holding the lease (a worker killed earlier may hold it until it runs out)."""
        holder = lease_holder(database_url)
        workers = {child.pid for child in psutil.Process(live.process.pid).children()}
        return holder is not None and int(holder.split(":")[1]) in workers and int(holder.split(":")[1])

    assert predict(live, requests.Session(), "swept") == 200
    try:
        wait_for(lambda: (swept_requests(live) or 0) > 0, "the sweep to measure the served version", DEADLINE)
        holder_pid = wait_for(held_by_a_worker, "a worker to hold the monitoring lease", DEADLINE)
    except AssertionError as failed:  # say what the workers said, and who held the lease
        raise AssertionError(f"{failed}; lease: {lease_holder(database_url)}; workers: "
                             f"{[c.pid for c in psutil.Process(live.process.pid).children()]}\n"
                             f"{live.log_path.read_text()[-6000:]}") from None

    os.kill(holder_pid, signal.SIGKILL)  # it cannot let the lease go
    taken = wait_for(lambda: (pid := held_by_a_worker()) != holder_pid and pid,
                     "another worker to take the monitoring lease over", DEADLINE)
    assert taken != holder_pid
    server.wait_serving(live)
