"""The prediction log bounded by bytes (issue 48): PREDICTION_LOG_MAX_MB holds under a flood at a 100 %
share, shared fairly among models (one hot model cannot evict another's rows), a model may ask for
less, /metrics and /readyz say what the log holds, logging stops on a volume short of space, and
pruning gives the space back (SQLite's file, PostgreSQL's table)."""
import os
import sqlite3

import orjson
import pytest
from sqlalchemy import func, select, text

from api import lifecycle
from registry.db import db
from registry.monitoring import log_bounds
from registry.monitoring.log_queue import Entry
from registry.monitoring.tables import LoggedPrediction
from registry.tables import utcnow
from tests.databases import BACKEND
from tests.helpers import assert_problem, scaled_sum, upload_ok, wait_for

MAX_MB = 0.25
WIDE = [float(i) / 7 for i in range(120)]  # ~2.5 KB of JSON a row: the bound is a hundred-odd rows


@pytest.fixture(autouse=True)
def no_give_back_owed(monkeypatch):
    """Each test starts as a new process does: no give-back owed or put off by an earlier test's pruning. (One that was
    owed ran in the floor's test, emptied the WAL and so gave space back after the writer stopped: a full run's
    failure.)"""
    monkeypatch.setattr(log_bounds._GivingBack, "owed", False)
    monkeypatch.setattr(log_bounds._GivingBack, "at", float("-inf"))


@pytest.fixture
def app(build_app):
    return build_app(PREDICTION_LOG_SAMPLE=1.0, PREDICTION_LOG_MAX_MB=MAX_MB)


@pytest.fixture
def models(client, ci):
    for name in ("hot", "quiet"):
        upload_ok(client, ci, name, scaled_sum(1))
        assert client.post(f"/models/{name}/versions/1/promote", json={}, headers=ci).status_code == 200
    return "hot", "quiet"


def the_log(app):
    """The app's prediction log, its writer running: the app's lifecycle started, as a worker starts it before it
    answers (an app a test builds and offers to without a request would hold its entries)."""
    lifecycle.of(app).start()
    return app.extensions["model_registry"].prediction_log


def flood(app, model: str, count: int, start: int = 0) -> None:
    """Offer ``count`` wide entries of ``model`` to the writer, as the predict routes do, and wait until written."""
    prediction_log = the_log(app)
    for i in range(start, start + count):
        prediction_log.offer(Entry(request_id=f"{model}-{i}", model=model, version=1, alias="production", route="primary",
                                   rows=[WIDE], outputs={"predictions": [1.0]}, latency_ms=1.0, status=200, at=utcnow()))
    assert prediction_log.flush(timeout=60), "the prediction log did not drain"


def held(app) -> log_bounds.Usage:
    with app.app_context():
        return log_bounds.usage()


def test_the_bound_holds_under_a_flood_oldest_first(app, models):
    for turn in range(8):  # ~1 MB offered in all: four times the bound
        flood(app, "hot", 50, start=turn * 50)
        assert held(app).bytes <= MAX_MB * log_bounds.MB
    with app.app_context():
        kept = db.session.execute(select(LoggedPrediction.request_id).order_by(LoggedPrediction.id)).scalars().all()
    assert kept[-1] == "hot-399" and len(kept) < 400
    assert kept == [f"hot-{i}" for i in range(400 - len(kept), 400)]  # the newest, without a gap


def test_a_hot_model_does_not_evict_a_quiet_ones_rows(app, models):
    flood(app, "quiet", 20)
    flood(app, "hot", 400)
    usage = held(app)
    assert usage.models["quiet"][0] == 20  # all of them: under an equal share
    assert usage.bytes <= MAX_MB * log_bounds.MB
    assert usage.models["hot"][1] > usage.models["quiet"][1]  # it has what the quiet one leaves


def test_a_model_may_ask_for_less_and_shows_it(app, client, models, ci):
    changed = client.patch("/models/hot", json={"prediction_log": {"max_mb": 0.05}}, headers=ci)
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["prediction_log"] == {"sample": 1.0, "max_mb": 0.05, "explain": 0.0}
    flood(app, "hot", 200)
    assert 0 < held(app).models["hot"][1] <= 0.05 * log_bounds.MB
    both = client.patch("/models/hot", json={"prediction_log": {"sample": 0.5, "max_mb": None}}, headers=ci)
    assert both.get_json()["prediction_log"] == {"sample": 0.5, "max_mb": None, "explain": 0.0}


@pytest.mark.parametrize("max_mb", [0, -1, "lots"])
def test_a_cap_that_is_not_a_positive_number_is_refused(client, models, ci, max_mb):
    assert_problem(client.patch("/models/hot", json={"prediction_log": {"max_mb": max_mb}}, headers=ci), 422, "max_mb")


def test_metrics_show_bytes_rows_and_pruned_rows(app, client, models):
    flood(app, "quiet", 5)
    flood(app, "hot", 300)
    metrics = client.get("/metrics").get_data(as_text=True)
    usage = held(app)
    assert f'registry_prediction_log_rows{{model="quiet"}} 5.0' in metrics
    assert f'registry_prediction_log_bytes{{model="hot"}} {float(usage.models["hot"][1])}' in metrics
    assert f"registry_prediction_log_max_bytes {MAX_MB * log_bounds.MB}" in metrics
    pruned = next(line for line in metrics.splitlines() if line.startswith('registry_prediction_log_pruned_total{reason="bytes"}'))
    assert float(pruned.split()[-1]) >= 300 - usage.models["hot"][0]


def test_readyz_warns_near_the_bound(app, client, models):
    assert not [w for w in client.get("/readyz").get_json()["warnings"] if "PREDICTION_LOG_MAX_MB" in w]
    flood(app, "hot", 300)
    warnings = client.get("/readyz").get_json()["warnings"]
    assert any("of PREDICTION_LOG_MAX_MB=0.25: each model's oldest rows are pruned" in w for w in warnings), warnings


@pytest.mark.skipif(BACKEND != "sqlite", reason="a PostgreSQL server's volume is not visible to the registry")
def test_logging_stops_when_the_databases_volume_runs_short(build_app, ci, admin, monkeypatch):
    app = build_app(PREDICTION_LOG_SAMPLE=1.0, PREDICTION_LOG_MIN_FREE_MB=10**12)  # more than any disk has
    client = app.test_client()
    upload_ok(client, admin, "m", scaled_sum(1))  # registry writes go on
    assert client.post("/models/m/versions/1/promote", json={}, headers=admin).status_code == 200
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready"
    assert any("under PREDICTION_LOG_MIN_FREE_MB=1e+12: the prediction log records nothing" in w
               for w in ready["warnings"]), ready["warnings"]
    loop, woken = the_log(app)._loop, []  # the writer looks at the volume again at its next turn (WRITE_SECONDS),
    wake = loop.wake                      # not once for each request it does not log
    monkeypatch.setattr(loop, "wake", lambda: woken.append("woken"))
    for _ in range(20):
        assert client.post("/models/m/production/predict", json={"instances": [[1.0, 2.0, 3.0]]}).status_code == 200
    assert len(woken) <= 1  # at most once, to read the models' shares again (they are older than a refresh)
    monkeypatch.setattr(loop, "wake", wake)
    assert the_log(app).flush()
    assert held(app).rows == 0
    assert "registry_prediction_log_paused 1.0" in client.get("/metrics").get_data(as_text=True)


@pytest.mark.skipif(BACKEND != "sqlite", reason="a PostgreSQL server's volume is not visible to the registry")
def test_a_large_batch_stops_at_the_floor_not_after_it(build_app, admin, database_url, monkeypatch):
    """A volume with 5 MB over the floor and 10 MB queued at once: the writer looks again before each
    part, so the database (its WAL too) never takes the volume under PREDICTION_LOG_MIN_FREE_MB."""
    app = build_app(PREDICTION_LOG_SAMPLE=1.0, PREDICTION_LOG_MAX_MB=1000, PREDICTION_LOG_MIN_FREE_MB=32)
    upload_ok(app.test_client(), admin, "m", scaled_sum(1))
    path = database_url.removeprefix("sqlite:///")

    def used() -> int:
        return sum(os.path.getsize(file) for file in (path, path + "-wal") if os.path.exists(file))

    volume = used() + (32 + 5) * log_bounds.MB
    monkeypatch.setattr(log_bounds, "free_bytes", lambda url: volume - used())
    prediction_log = the_log(app)
    for i in range(100):  # ~100 KB each: one batch, twice what the volume has over the floor
        prediction_log.offer(Entry(request_id=f"m-{i}", model="m", version=1, alias=None, route="primary",
                                   rows=[WIDE] * 40, outputs={"predictions": [1.0]}, latency_ms=1.0, status=200,
                                   at=utcnow()))
    assert prediction_log.flush(timeout=60)
    assert 0 < held(app).rows < 100  # some parts went, and then the writer stopped
    assert volume - used() >= 32 * log_bounds.MB, (volume - used()) / log_bounds.MB
    assert prediction_log.limits.free_space_warning() is not None


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's file")
def test_sqlite_gives_pruned_pages_back_and_its_file_stops_growing(app, models, database_url):
    path = database_url.removeprefix("sqlite:///")
    pages = []
    for turn in range(6):
        flood(app, "hot", 100, start=turn * 100)
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
            # given back to the file system, within a second of the last prune (the writer pays what it put off)
            wait_for(lambda: connection.execute("PRAGMA freelist_count").fetchone()[0] == 0, "free pages given back", 10)
            pages.append(connection.execute("PRAGMA page_count").fetchone()[0])
    assert max(pages[3:]) <= max(pages[:3]) * 1.1, pages  # flat once at the bound (pages fill unevenly)


@pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL's table")
def test_postgresql_table_and_indexes_stop_growing_across_prune_cycles(app, models):
    sizes = []
    for turn in range(6):
        flood(app, "hot", 100, start=turn * 100)
        # the VACUUM a prune put off (once a second at most) is paid by the writer within the second
        wait_for(lambda: not log_bounds.owes_give_back(), "the VACUUM owed", 10)
        with app.app_context():
            sizes.append(db.session.execute(text("SELECT pg_total_relation_size('prediction_log')")).scalar())
    assert max(sizes[3:]) <= max(sizes[:3]) * 1.2, sizes  # flat once at the bound


def test_rows_carry_their_size(app, models):
    flood(app, "hot", 3)
    with app.app_context():
        sizes = db.session.execute(select(func.min(LoggedPrediction.bytes))).scalar()
    assert sizes > len(orjson.dumps([WIDE]))


def test_a_label_counts_in_its_rows_bytes(app, client, models, ci):
    flood(app, "quiet", 2)
    with app.app_context():
        before = dict(db.session.execute(select(LoggedPrediction.request_id, LoggedPrediction.bytes)).all())
    label = {"items": [{"request_id": "quiet-0", "label": 12.25}]}
    assert client.post("/models/quiet/feedback", json=label, headers=ci).get_json()["applied"] == 1
    with app.app_context():
        after = dict(db.session.execute(select(LoggedPrediction.request_id, LoggedPrediction.bytes)).all())
    assert after == {"quiet-0": before["quiet-0"] + len("12.25"), "quiet-1": before["quiet-1"]}
    relabel = {"items": [{"request_id": "quiet-0", "label": 3.0}]}  # a new label replaces the old one's bytes
    assert client.post("/models/quiet/feedback", json=relabel, headers=ci).get_json()["replaced"] == 1
    with app.app_context():
        assert db.session.execute(select(LoggedPrediction.bytes).where(LoggedPrediction.request_id == "quiet-0")
                                  ).scalar() == before["quiet-0"] + len("3.0")
