"""Hot swap inside a process: two app instances on one database play two workers.

Worker A is the ``app`` fixture, worker B a second app on the same database and artifact root.
Neither runs the background watcher unless a test starts it; ``server.refresh()`` is what the
watcher calls on every tick, so calling it by hand plays one tick at a chosen moment.
"""
import shutil
import threading
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

import registry.serving.server
from registry.db import db
from tests.helpers import WrappedLoader, close_app, make_app, scaled_sum, upload

WAIT = 10  # seconds; only a bound on waiting for an Event, so a broken test fails instead of hanging
PROBE = [[1.0, 1.0, 1.0]]


def answer(client, ref="production") -> int:
    """The version that answered ``ref``, after checking it computed the answer itself."""
    response = client.post(f"/models/m/{ref}/predict", json={"instances": PROBE})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert response.headers["X-Model-Version"] == str(body["version"])
    assert body["predictions"] == [pytest.approx(3.0 * body["version"])]  # version k was fitted as k·sum
    return body["version"]


def move(client, headers, action, version=None, **body):
    if action == "promote":
        response = client.post(f"/models/m/versions/{version}/promote", json=body, headers=headers)
    else:
        response = client.post("/models/m/rollback", json=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def counter(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def shas(client, ci):
    """Model ``m`` with versions 1..3 (k·sum), production on 1 (set through worker A); their sha256s."""
    digests = {}
    for factor in (1, 2, 3):
        response = upload(client, ci, "m", scaled_sum(factor))
        assert response.status_code == 201, response.get_json()
        digests[factor] = response.get_json()["sha256"]
    move(client, ci, "promote", 1)
    return digests


@pytest.fixture
def worker_b(database_url, tmp_path, shas):
    """A second app ("worker") on the same database and artifact root, already serving production."""
    app = make_app(database_url, tmp_path / "artifacts")
    assert answer(app.test_client()) == 1
    yield app
    close_app(app)


@pytest.fixture
def b(worker_b):
    return worker_b.test_client()


@pytest.fixture
def b_server(worker_b):
    return worker_b.extensions["model_registry"].runtime.models


class LoadGate:
    """Holds every load of one artifact by ``server`` at the door until released; other artifacts pass."""

    def __init__(self, monkeypatch, server, sha256: str):
        self.entered = threading.Event()
        self.release = threading.Event()

        def gate(info):
            if info.sha256 == sha256:
                self.entered.set()
                assert self.release.wait(WAIT), "the gate was never released"

        monkeypatch.setattr(server.loads, "loader", WrappedLoader(server.loads.loader, gate))


def in_thread(target) -> threading.Thread:
    errors = []

    def run():
        try:
            target()
        except BaseException as exc:  # handed to the test through .errors
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.errors = errors
    thread.start()
    return thread


def finish(thread: threading.Thread) -> None:
    thread.join(WAIT)
    assert not thread.is_alive()
    assert thread.errors == []


# -- alias moves -------------------------------------------------------------------------------


def test_another_worker_answers_the_old_version_until_its_refresh_then_the_new_one(client, ci, b, b_server):
    move(client, ci, "promote", 2)

    assert answer(b) == 1
    assert answer(b) == 1
    b_server.refresh()
    assert answer(b) == 2
    assert answer(client, "2") == 2


def test_the_worker_that_handled_the_promote_answers_with_the_new_version_at_once(client, ci, shas):
    assert answer(client) == 1
    move(client, ci, "promote", 3)
    assert answer(client) == 3
    move(client, ci, "rollback")
    assert answer(client) == 1


def test_a_rollback_reaches_another_worker_at_its_refresh(client, ci, b, b_server):
    move(client, ci, "promote", 2)
    b_server.refresh()
    assert answer(b) == 2

    move(client, ci, "rollback")
    assert answer(client) == 1
    assert answer(b) == 2
    b_server.refresh()
    assert answer(b) == 1


def test_a_refresh_loads_the_new_version_before_swapping_it_in(monkeypatch, client, ci, shas, b, b_server):
    move(client, ci, "promote", 2)  # worker A loaded v2 here, before the gate exists
    gate = LoadGate(monkeypatch, b_server, shas[2])
    loads = counter("registry_model_loads_total", model="m")

    refresher = in_thread(b_server.refresh)
    assert gate.entered.wait(WAIT)
    # While worker B loads v2, its requests keep being answered by v1 without waiting, and a
    # pinned version it has not loaded yet loads on its own, past the load in progress.
    assert [answer(b) for _ in range(3)] == [1, 1, 1]
    assert answer(b, "3") == 3
    assert refresher.is_alive()
    assert counter("registry_model_loads_total", model="m") == loads + 1  # v3 only

    gate.release.set()
    finish(refresher)
    assert answer(b) == 2
    assert counter("registry_model_loads_total", model="m") == loads + 2


def test_a_failed_load_during_refresh_keeps_the_old_version_and_counts_the_failure(client, ci, shas, b, b_server):
    store = b_server.loads.loader.store
    move(client, ci, "promote", 2)
    path = store.path_for(shas[2])
    original = path.read_bytes()
    path.write_bytes(original[:-10])  # the shared store lost the end of v2's file
    # and B's machine has no served form of v2 to load instead (A loaded it on another machine)
    shutil.rmtree(b_server.loads.loader.forms.path_for(shas[2]))
    failures = counter("registry_model_load_failures_total", model="m")

    b_server.refresh()

    assert counter("registry_model_load_failures_total", model="m") == failures + 1
    assert answer(b) == 1
    assert answer(client) == 2  # worker A had loaded v2 before the damage

    path.write_bytes(original)  # repaired: the next refresh tries again and swaps
    b_server.refresh()
    assert answer(b) == 2
    assert counter("registry_model_load_failures_total", model="m") == failures + 1


def test_a_move_this_worker_makes_during_its_refresh_is_not_undone_by_that_refresh(
    monkeypatch, client, ci, shas, b, b_server
):
    move(client, ci, "promote", 2)  # elsewhere
    gate = LoadGate(monkeypatch, b_server, shas[2])
    refresher = in_thread(b_server.refresh)  # reads production -> 2, then waits to load v2
    assert gate.entered.wait(WAIT)

    move(b, ci, "promote", 3)  # on worker B itself, while its refresh is loading v2
    assert answer(b) == 3
    gate.release.set()
    finish(refresher)

    assert answer(b) == 3  # the refresh read the database before this move: its v2 is older
    b_server.refresh()
    assert answer(b) == 3


def test_a_refresh_with_nothing_moved_loads_nothing(b, b_server):
    loads = counter("registry_model_loads_total", model="m")
    swaps = counter("registry_alias_swaps_total", model="m", alias="production")
    b_server.refresh()
    b_server.refresh()
    assert answer(b) == 1
    assert counter("registry_model_loads_total", model="m") == loads
    assert counter("registry_alias_swaps_total", model="m", alias="production") == swaps


def test_a_poll_with_nothing_changed_costs_one_query_and_a_change_is_read_in_full(client, ci, worker_b, b, b_server):
    b_server.refresh()  # catch up with whatever the fixtures did
    statements = []
    with worker_b.app_context():
        engine = db.engine
    polling = threading.get_ident()

    def listener(conn, cursor, statement, *rest):  # the poll's own: not the prediction log's writer meanwhile
        if threading.get_ident() == polling and statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        b_server.refresh()
        assert len(statements) == 1
        move(client, ci, "promote", 2)
        b_server.refresh()
        assert len(statements) > 2
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert answer(b) == 2


# -- pinned versions and latest ----------------------------------------------------------------


def test_a_pinned_version_never_changes_meaning(client, ci, b, b_server):
    before = [answer(b, "1"), answer(b, "2"), answer(client, "1")]
    move(client, ci, "promote", 2)
    move(client, ci, "promote", 3)
    move(client, ci, "rollback", to_version=1)
    b_server.refresh()
    assert [answer(b, "1"), answer(b, "2"), answer(client, "1")] == before == [1, 2, 1]


def test_latest_follows_new_uploads_after_refresh(client, ci, admin, b, b_server):
    assert answer(b, "latest") == 3
    response = upload(client, ci, "m", scaled_sum(4))
    assert response.status_code == 201

    assert answer(b, "latest") == 3
    b_server.refresh()
    assert answer(b, "latest") == 4

    assert client.delete("/models/m/versions/4", headers=admin).status_code == 200
    b_server.refresh()
    assert answer(b, "latest") == 3


def test_an_archived_pinned_version_is_410_after_refresh(client, admin, b, b_server):
    assert answer(b, "2") == 2
    assert client.delete("/models/m/versions/2", headers=admin).status_code == 200

    b_server.refresh()
    response = b.post("/models/m/2/predict", json={"instances": PROBE})
    assert response.status_code == 410
    assert response.mimetype == "application/problem+json"
    assert "archived" in response.get_json()["detail"]
    assert answer(b, "3") == 3
    assert answer(b) == 1


def test_a_refresh_that_read_before_an_archive_does_not_serve_the_archived_version_again(
    monkeypatch, client, ci, admin, shas, b, b_server
):
    assert answer(b, "2") == 2
    move(client, ci, "promote", 3, alias="staging")
    gate = LoadGate(monkeypatch, b_server, shas[3])
    refresher = in_thread(b_server.refresh)  # read: nothing archived; now loading v3 for staging
    assert gate.entered.wait(WAIT)

    assert b.delete("/models/m/versions/2", headers=admin).status_code == 200  # on worker B itself
    gate.release.set()
    finish(refresher)

    assert b.post("/models/m/2/predict", json={"instances": PROBE}).status_code == 410
    assert answer(b, "staging") == 3


def test_the_worker_that_archived_a_version_refuses_it_without_a_refresh(client, admin, shas):
    assert answer(client, "2") == 2  # loaded and cached here
    assert client.delete("/models/m/versions/2", headers=admin).status_code == 200
    assert client.post("/models/m/2/predict", json={"instances": PROBE}).status_code == 410
    assert answer(client, "3") == 3


def test_latest_moves_off_a_version_this_worker_archived_at_once(client, admin, shas):
    assert answer(client, "latest") == 3
    assert client.delete("/models/m/versions/3", headers=admin).status_code == 200
    assert answer(client, "latest") == 2


# -- the watcher -------------------------------------------------------------------------------


@pytest.fixture
def watching_worker(database_url, tmp_path, shas, monkeypatch):
    """Worker C, with the background watcher on; ``.refreshed(n)`` waits for n more refreshes."""
    app = make_app(database_url, tmp_path / "artifacts", WATCH_ALIASES=True, ALIAS_REFRESH_SECONDS=0.2)
    server = app.extensions["model_registry"].runtime.models
    done = threading.Condition()
    count = [0]
    real_refresh = server.refresh

    def counted_refresh():
        real_refresh()
        with done:
            count[0] += 1
            done.notify_all()

    def refreshed(more: int) -> None:
        with done:
            target = count[0] + more
            assert done.wait_for(lambda: count[0] >= target, WAIT)

    monkeypatch.setattr(server, "refresh", counted_refresh)
    before = set(threading.enumerate())
    app.refreshed = refreshed
    yield app
    server.stop()
    for thread in set(threading.enumerate()) - before:
        if thread.name == "alias-watcher":
            thread.join(WAIT)
    close_app(app)


def test_a_watching_worker_warms_every_alias_before_its_first_answer(client, ci, watching_worker):
    move(client, ci, "promote", 2, alias="staging")
    c = watching_worker.test_client()
    loads = counter("registry_model_loads_total", model="m")

    assert c.get("/healthz").status_code == 200  # the first request starts the watcher
    assert counter("registry_model_loads_total", model="m") == loads + 2
    assert (answer(c), answer(c, "staging")) == (1, 2)
    assert counter("registry_model_loads_total", model="m") == loads + 2


def test_a_watching_worker_follows_a_move_made_elsewhere_on_its_own(client, ci, watching_worker):
    c = watching_worker.test_client()
    assert answer(c) == 1
    move(client, ci, "promote", 3)
    # A refresh that began before the move returned may have read the old state; the next cannot.
    watching_worker.refreshed(2)
    assert answer(c) == 3



def test_a_database_outage_is_logged_once_without_a_traceback_and_its_end_once(monkeypatch, caplog, b, b_server):
    real, calls = registry.serving.server.lookups.change_marker, []

    def unavailable():
        calls.append(1)
        if len(calls) <= 4:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return real()

    monkeypatch.setattr(registry.serving.server.lookups, "change_marker", unavailable)
    caplog.set_level("WARNING", logger="registry.serving.watcher")
    b_server.start()
    deadline = time.monotonic() + 10
    while len(calls) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the watcher, bounded by the deadline

    assert len(calls) >= 6, "the watcher did not poll through the outage"
    messages = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert [(level, exc) for level, _, exc in messages] == [("ERROR", None), ("WARNING", None)]
    assert "database is unavailable" in messages[0][1] and "answers again" in messages[1][1]
    assert answer(b) == 1
