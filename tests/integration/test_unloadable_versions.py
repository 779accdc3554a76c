"""A version whose stored file is damaged or missing is retried with a growing delay, never in a loop.

Worker A is the ``app`` fixture; worker B a second app on the same database and artifact root but
on another machine (a node cache of its own, so it reads the artifact where A left a served form),
whose refreshes the test calls by hand (one call = one tick of the watcher) on a clock it moves.
"""
import logging

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event

from registry.db import db
from registry.serving.load_failures import LoadFailures
from tests.helpers import PROBE_ROW, assert_problem, close_app, make_app, scaled_sum, upload_ok


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def failures_counted() -> float:
    return REGISTRY.get_sample_value("registry_model_load_failures_total", {"model": "m"}) or 0.0


def answer(client, ref="production") -> int:
    response = client.post(f"/models/m/{ref}/predict", json={"instances": [PROBE_ROW]})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["version"]


@pytest.fixture
def damaged_v2(app, client, ci):
    """Versions 1 and 2 of ``m``; production moved to 2 on worker A, then v2's file was damaged."""
    upload_ok(client, ci, "m", scaled_sum(1))
    upload_ok(client, ci, "m", scaled_sum(2))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    store = app.extensions["model_registry"].store
    sha = client.get("/models/m/versions/2").get_json()["sha256"]
    original = store.path_for(sha).read_bytes()
    return store.path_for(sha), original


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def worker_b(database_url, tmp_path, damaged_v2, clock):
    """Worker B, serving production on v1, with a clock the test moves."""
    app = make_app(database_url, tmp_path / "artifacts", ARTIFACT_CACHE_DIR=tmp_path / "machine-b")
    server = app.extensions["model_registry"].runtime.models
    server.loads.failures = LoadFailures(first_delay=server.watcher.poll_seconds, clock=clock)
    assert answer(app.test_client()) == 1
    yield app
    close_app(app)


@pytest.fixture
def b_server(worker_b):
    return worker_b.extensions["model_registry"].runtime.models


def promote_damaged(client, ci, damaged_v2):
    path, original = damaged_v2
    assert client.post("/models/m/versions/2/promote", json={}, headers=ci).status_code == 200
    path.write_bytes(original[:-10])


def test_an_alias_moved_to_a_damaged_version_keeps_its_old_version_and_is_listed_unservable(
    client, ci, damaged_v2, worker_b, b_server, caplog
):
    promote_damaged(client, ci, damaged_v2)
    caplog.set_level(logging.ERROR, logger="registry.serving.version_loads")

    b_server.refresh()

    b = worker_b.test_client()
    assert answer(b) == 1
    ready = b.get("/readyz")
    assert ready.status_code == 200
    (entry,) = ready.get_json()["unservable"]
    assert entry["model"] == "m" and entry["alias"] == "production" and entry["version"] == 2
    assert entry["serving"] == 1
    assert "no longer matches its sha256" in entry["error"]
    (line,) = caplog.records
    assert "could not load m v2" in line.getMessage() and "attempt 1" in line.getMessage()
    assert line.exc_info is None  # one line, no traceback


def test_refreshes_during_the_backoff_do_not_read_the_file_again(client, ci, damaged_v2, b_server, clock, caplog):
    promote_damaged(client, ci, damaged_v2)
    caplog.set_level(logging.ERROR, logger="registry.serving.version_loads")
    b_server.refresh()
    failures = failures_counted()

    for _ in range(20):
        b_server.refresh()

    assert failures_counted() == failures
    assert len(caplog.records) == 1


def test_a_poll_while_the_target_waits_for_its_retry_costs_one_query(client, ci, damaged_v2, worker_b, b_server, clock):
    promote_damaged(client, ci, damaged_v2)
    b_server.refresh()
    statements = []
    with worker_b.app_context():
        engine = db.engine

    def selects(_conn, _cursor, statement, *_rest):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", selects)
    try:
        b_server.refresh()
        assert len(statements) == 1  # the change marker only
        clock.now += b_server.watcher.poll_seconds  # the delay has passed: the targets are read again
        b_server.refresh()
        assert len(statements) > 2
    finally:
        event.remove(engine, "before_cursor_execute", selects)


def test_attempts_follow_a_doubling_delay(client, ci, damaged_v2, b_server, clock, caplog):
    promote_damaged(client, ci, damaged_v2)
    caplog.set_level(logging.ERROR, logger="registry.serving.version_loads")
    delays = []
    for _ in range(5):
        b_server.refresh()
        failure = b_server.loads.failures.get(("m", 2, damaged_v2[0].name))
        delays.append(failure.delay)
        clock.now += failure.delay / 2
        b_server.refresh()  # too early: nothing happens
        clock.now += failure.delay / 2

    base = b_server.watcher.poll_seconds
    assert delays == [base, 2 * base, 4 * base, 8 * base, 16 * base]
    assert [f"attempt {n}" in r.getMessage() for n, r in enumerate(caplog.records, 1)] == [True] * 5


def test_a_repaired_file_is_swapped_in_at_the_next_refresh(client, ci, damaged_v2, worker_b, b_server):
    promote_damaged(client, ci, damaged_v2)
    b_server.refresh()
    path, original = damaged_v2

    path.write_bytes(original)
    b_server.refresh()

    b = worker_b.test_client()
    assert answer(b) == 2
    assert b.get("/readyz").get_json()["unservable"] == []


def test_a_pinned_damaged_version_answers_the_same_error_without_reading_the_file_again(
    client, damaged_v2, worker_b
):
    path, original = damaged_v2
    path.write_bytes(original[:-10])
    b = worker_b.test_client()

    first = b.post("/models/m/2/predict", json={"instances": [PROBE_ROW]})
    failures = failures_counted()
    again = [b.post("/models/m/2/predict", json={"instances": [PROBE_ROW]}) for _ in range(5)]

    assert_problem(first, 500, "no longer matches its sha256")
    for response in again:
        assert response.get_json()["detail"] == first.get_json()["detail"]
    assert failures_counted() == failures
    assert answer(b, "1") == 1  # other versions are untouched


def test_a_missing_file_is_listed_with_what_to_do(client, ci, damaged_v2, worker_b, b_server):
    path, _ = damaged_v2
    assert client.post("/models/m/versions/2/promote", json={}, headers=ci).status_code == 200
    path.unlink()

    b_server.refresh()

    (entry,) = worker_b.test_client().get("/readyz").get_json()["unservable"]
    assert "missing" in entry["error"] and "re-upload the original file" in entry["error"]
