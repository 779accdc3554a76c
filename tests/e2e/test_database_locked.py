"""A database held locked by another process (a backup tool's exclusive lock on the SQLite file, a
long ``LOCK TABLE`` on PostgreSQL): the writes that arrive wait for it, and predictions of loaded
aliases go on answering meanwhile on the workers' other threads. Before, each waiting write held a
whole (sync) worker, and with more writes than workers every prediction waited for the lock. (While
every thread of a worker waits, that worker's next requests wait too: threads bound it, not remove it.)"""
import sqlite3
import threading
import time
from contextlib import contextmanager

import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from bench.harness import server
from bench.harness.models import PROBE_ROW, scaled_sum, upload
from tests.databases import fresh_database
from tests.e2e.conftest import ADMIN_TOKEN
from tests.helpers import close_app, make_app, upload_ok

WORKERS = 2
WRITES = 3  # more waiting writes than workers, fewer than a worker's threads (WORKER_THREADS, 4)
HOLD_SECONDS = 8
SETTLE_SECONDS = 3  # after the writes are sent, before answers are counted: they are waiting by then


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A gunicorn whose workers all started with ``m``'s production alias loaded (a worker still
    learning an alias must ask the database, and would wait for the lock like a write)."""
    root = tmp_path_factory.mktemp("locked")
    with fresh_database(root) as database_url:
        env = server.service_env(database_url, root / "artifacts", ADMIN_TOKEN)
        server.migrate(env)
        app = make_app(database_url, root / "artifacts", ADMIN_TOKEN=ADMIN_TOKEN)
        try:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            upload_ok(app.test_client(), headers, "m", scaled_sum(2))
            assert app.test_client().post("/models/m/versions/1/promote", json={}, headers=headers).status_code == 200
        finally:
            close_app(app)
        live = server.start(env, root, workers=WORKERS)
        try:
            yield live, database_url
        finally:
            live.stop()


@contextmanager
def held_locked(database_url: str):
    """Another process's exclusive lock on what uploads write, for the duration of the block."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
    else:
        connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
        connection.execute("LOCK TABLE models IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        if url.get_backend_name() == "sqlite":
            connection.execute("COMMIT")
        else:
            connection.commit()
        connection.close()


def test_predictions_answer_while_writes_wait_for_a_lock_held_elsewhere(live):
    live, database_url = live
    answered: list[tuple[float, int]] = []  # (finished at, status)
    writes: list[int] = []
    done = threading.Event()

    def predict():
        while not done.is_set():
            response = requests.post(f"{live.url}/models/m/production/predict", json={"instances": [PROBE_ROW]}, timeout=60)
            answered.append((time.monotonic(), response.status_code))

    def write(factor):
        writes.append(upload(live, "m", scaled_sum(factor)).status_code)

    with held_locked(database_url):
        writers = [threading.Thread(target=write, args=(10 + i,)) for i in range(WRITES)]
        for thread in writers:
            thread.start()
        predictors = [threading.Thread(target=predict) for _ in range(2)]
        for thread in predictors:
            thread.start()
        window = (time.monotonic() + SETTLE_SECONDS, time.monotonic() + HOLD_SECONDS)
        time.sleep(HOLD_SECONDS)  # the lock is held this long: what happens meanwhile is the test
        during = [status for finished, status in answered if window[0] <= finished <= window[1]]
    for thread in writers:
        thread.join(timeout=120)
    done.set()
    for thread in predictors:
        thread.join(timeout=60)

    assert len(during) >= 5 and set(during) == {200}, during  # answered while every write waited
    assert writes == [201] * WRITES  # each waited for the lock, then was stored: none lost
