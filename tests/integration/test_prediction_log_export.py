"""The prediction log's leaves for the lake (issue 48): rows past the window, and rows the byte bound is
about to prune, are written as Parquet (model=<name>/day=<day>/part-<id>.parquet) with their labels and
a manifest before they are pruned, to a directory or to S3 (a real SeaweedFS); read back with pandas they
are the logged rows; a failed export keeps them (said in /readyz and /metrics, tried again); nothing is
exported twice, also after a restart or an export cut short; GET /predictions says where they went."""
import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
from prometheus_client import REGISTRY
from pyarrow import fs
from sqlalchemy import func, select, text

from api import lifecycle
from registry import leases
from registry.db import db
from registry.monitoring import lake as lakes
from registry.monitoring import lake_files, log_bounds, log_export
from registry.monitoring.log_queue import Entry
from registry.monitoring.tables import LogExport, LoggedPrediction
from registry.tables import RegisteredModel, utcnow
from tests.databases import BACKEND
from tests.helpers import scaled_sum, upload_ok, wait_for

OLD = timedelta(days=40)  # past PREDICTION_LOG_DAYS (30) and its hour of grace
WIDE = [float(i) / 7 for i in range(120)]  # ~2.5 KB of JSON a row


@pytest.fixture
def lake_dir(tmp_path):
    return tmp_path / "lake"


@pytest.fixture
def exporting(build_app, lake_dir):
    """``exporting(**overrides)``: an app that exports to the test's directory (no background turns: the
    test runs them), with every answer logged."""
    def build(**overrides):
        settings = {"PREDICTION_LOG_SAMPLE": 1.0, "PREDICTION_LOG_EXPORT": str(lake_dir),
                    "PREDICTION_LOG_EXPORT_SECONDS": 0} | overrides
        return build_app(**settings)

    return build


@pytest.fixture
def app(exporting):
    return exporting()


@pytest.fixture
def model(client, ci):
    upload_ok(client, ci, "hot", scaled_sum(1))
    assert client.post("/models/hot/versions/1/promote", json={}, headers=ci).status_code == 200
    return "hot"


def the_log(app):
    """The app's prediction log, its writer running: the app's lifecycle started, as a worker starts it before it
    answers (an app a test builds and offers to without a request would hold its entries)."""
    lifecycle.of(app).start()
    return app.extensions["model_registry"].prediction_log


def offer(app, count: int, *, start: int = 0, age: timedelta = timedelta(0), rows=None) -> list[str]:
    """Log ``count`` answers of ``hot`` answered ``age`` ago, as the predict routes do; their request ids."""
    prediction_log = the_log(app)
    ids = [f"hot-{i}" for i in range(start, start + count)]
    for i, request_id in enumerate(ids, start):
        prediction_log.offer(Entry(request_id=request_id, model="hot", version=1, alias="production", route="primary",
                                   rows=rows or [[float(i), 2.0, 3.0]], outputs={"predictions": [float(i) * 2]},
                                   latency_ms=1.5, status=200, at=utcnow() - age + timedelta(milliseconds=i)))
    assert prediction_log.flush(timeout=60), "the prediction log did not drain"
    return ids


def export_turn(app) -> list[log_export.Exported]:
    exporter = app.extensions["background"][4]
    with app.app_context():
        return exporter.turn()


def hot_id(app) -> int:
    with app.app_context():
        return db.session.execute(select(RegisteredModel.id).where(RegisteredModel.name == "hot")).scalar_one()


def logged(app) -> pd.DataFrame:
    """The database's rows of ``hot`` as the lake writes them (JSON as text)."""
    with app.app_context():
        return log_export._rows(hot_id(app), 0, 10**12)


def counted(client, name: str) -> float:
    """A counter of /metrics (this process's registry is shared by the run's apps: compare before and after)."""
    line = next(line for line in client.get("/metrics").get_data(as_text=True).splitlines() if line.startswith(name + " "))
    return float(line.split()[-1])


def lake_rows(root) -> pd.DataFrame:
    return pd.read_parquet(root).sort_values("id").reset_index(drop=True)


def manifest(lake_dir) -> dict:
    return json.loads((lake_dir / "model=hot" / "_manifest.json").read_text())


def test_rows_past_the_window_round_trip_through_a_directory_with_their_labels(app, client, model, ci, analyst,
                                                                                lake_dir):
    ids = offer(app, 30, age=OLD)
    offer(app, 5, start=30)  # inside the window: they stay, unexported
    labels = [{"request_id": request_id, "label": i * 1.5} for i, request_id in enumerate(ids[:10])]
    assert client.post("/models/hot/feedback", json={"items": labels}, headers=ci).get_json()["applied"] == 10
    before = logged(app)

    exported = export_turn(app)

    assert sum(step.rows for step in exported) == 30
    found = lake_rows(lake_dir)
    expected = before[before["request_id"].isin(ids)].reset_index(drop=True)
    assert found["model"].astype(str).unique().tolist() == ["hot"]  # the hive partitions read back as columns
    pd.testing.assert_frame_equal(found[expected.columns], expected, check_dtype=False, check_categorical=False)
    assert [json.loads(label) for label in found["label"][:10]] == [i * 1.5 for i in range(10)]
    assert found["label"][10:].isna().all()
    assert json.loads(found["inputs"][3]) == [[3.0, 2.0, 3.0]]

    files = manifest(lake_dir)["files"]
    assert sum(entry["rows"] for entry in files) == 30 and manifest(lake_dir)["rows"] == 30
    for entry in files:
        data = (lake_dir / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
        assert entry["path"] == f"model=hot/day={entry['day']}/part-{entry['first_id']:019d}.parquet"
        assert entry["versions"] == [1] and entry["schema_version"] == lake_files.SCHEMA_VERSION
    assert {entry["first_at"][:10] for entry in files} == {entry["day"] for entry in files}

    assert the_log(app).prune() == 30  # exported: now they may go
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(LoggedPrediction)).scalar() == 5
    page = client.get("/models/hot/predictions", headers=analyst).get_json()
    assert len(page["items"]) == 5  # the database's window, as before
    assert page["exported_to"]["location"] == f"{lake_dir}/model=hot"
    assert page["exported_to"]["manifest"] == f"{lake_dir}/model=hot/_manifest.json"
    assert page["exported_to"]["rows"] == 30
    assert page["exported_to"]["before"] == min(item["at"] for item in page["items"])


def test_without_an_export_the_answer_says_nothing_went(build_app, ci, analyst):
    app = build_app(PREDICTION_LOG_SAMPLE=1.0)
    client = app.test_client()
    upload_ok(client, ci, "hot", scaled_sum(1))
    assert client.get("/models/hot/predictions", headers=analyst).get_json() == {
        "items": [], "next_cursor": None, "exported_to": None}


def test_rows_past_the_window_are_not_pruned_before_they_are_exported(app, model):
    offer(app, 12, age=OLD)
    assert the_log(app).prune() == 0
    export_turn(app)
    assert the_log(app).prune() == 12


def test_the_byte_bound_prunes_only_rows_that_went_to_the_lake(exporting, ci, lake_dir):
    app = exporting(PREDICTION_LOG_MAX_MB=0.25)
    client = app.test_client()
    upload_ok(client, ci, "hot", scaled_sum(1))
    offered = []
    for turn in range(6):  # ~0.75 MB offered: three times the bound
        offered += offer(app, 50, start=turn * 50, rows=[WIDE])
        if turn == 2:
            with app.app_context():
                assert log_bounds.usage().bytes > 0.25 * log_bounds.MB  # nothing exported yet: nothing pruned
        if turn >= 2:
            export_turn(app)
    offer(app, 1, start=300, rows=[WIDE])  # a check after the last export prunes what it exported
    offered.append("hot-300")
    with app.app_context():
        assert log_bounds.usage().bytes <= 0.25 * log_bounds.MB
        kept = db.session.execute(select(LoggedPrediction.request_id)).scalars().all()
    exported = lake_rows(lake_dir)["request_id"].tolist()
    assert len(exported) == len(set(exported))  # each once
    assert set(exported) | set(kept) == set(offered)  # none lost: pruned rows are all in the lake


def test_a_failed_export_keeps_the_rows_says_so_and_is_tried_again(exporting, ci, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the lake's folder should be")
    app = exporting(PREDICTION_LOG_EXPORT=str(blocked / "lake"))
    client = app.test_client()
    upload_ok(client, ci, "hot", scaled_sum(1))
    offer(app, 10, age=OLD)
    failed, exported = (counted(client, f"registry_prediction_log_{name}_total") for name in ("export_failures", "exported"))

    assert export_turn(app) == [] and export_turn(app) == []
    assert the_log(app).prune() == 0  # nothing went: nothing is pruned
    warnings = client.get("/readyz").get_json()["warnings"]
    assert any(f"the prediction log of 'hot' could not be exported to {blocked}/lake (2 attempts failed" in w
               and "its rows stay in the database" in w for w in warnings), warnings
    assert counted(client, "registry_prediction_log_export_failures_total") == failed + 2
    with app.app_context():
        state = db.session.get(LogExport, hot_id(app))
        assert (state.failures, state.exported_id, state.pending_id is not None) == (2, 0, True)

    blocked.unlink()
    assert sum(step.rows for step in export_turn(app)) == 10
    assert not [w for w in client.get("/readyz").get_json()["warnings"] if "could not be exported" in w]
    assert counted(client, "registry_prediction_log_exported_total") == exported + 10
    assert len(lake_rows(blocked / "lake")) == 10
    assert the_log(app).prune() == 10


def offer_as_routes_do(app, count: int, *, start: int) -> int:
    """Offer ``count`` wide answers of ``hot`` through the log's own draw, as the predict routes do (an
    answer the log does not keep is not offered); how many it kept."""
    prediction_log, kept = the_log(app), 0
    for i in range(start, start + count):
        if prediction_log.keeps("hot", 200, f"hot-{i}"):
            kept += 1
            prediction_log.offer(Entry(request_id=f"hot-{i}", model="hot", version=1, alias="production",
                                       route="primary", rows=[WIDE], outputs={"predictions": [float(i)]},
                                       latency_ms=1.5, status=200, at=utcnow()))
    assert prediction_log.flush(timeout=60), "the prediction log did not drain"
    return kept


def test_a_lake_away_holds_a_model_past_its_overdraft_and_logging_resumes_when_it_returns(exporting, ci, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the lake's folder should be")
    app = exporting(PREDICTION_LOG_EXPORT=str(blocked / "lake"), PREDICTION_LOG_MAX_MB=0.25)
    client = app.test_client()
    upload_ok(client, ci, "hot", scaled_sum(1))
    bound = 0.25 * log_bounds.MB
    kept = 0
    for turn in range(12):  # ~1.5 MB offered while the lake refuses: six times the bound
        kept += offer_as_routes_do(app, 50, start=turn * 50)
        export_turn(app)
    with app.app_context():
        held_bytes = log_bounds.usage().bytes
    # Past the bound (nothing could be pruned), but never past the overdraft by more than one checked part.
    assert bound < held_bytes <= bound * log_bounds.OVERDRAFT + bound / 50, held_bytes
    assert kept < 600  # the rest was not logged
    warnings = client.get("/readyz").get_json()["warnings"]
    assert any("the prediction log records nothing of 'hot': past 125% of its share of PREDICTION_LOG_MAX_MB=0.25"
               in w for w in warnings), warnings
    assert 'registry_prediction_log_held{model="hot"} 1.0' in client.get("/metrics").get_data(as_text=True)

    blocked.unlink()  # the lake is back: its rows go, the bound prunes them, and the model is logged again
    assert sum(step.rows for step in export_turn(app)) > 0
    while sum(step.rows for step in export_turn(app)):  # a turn takes what is due at most
        pass
    the_log(app).enforce()
    assert offer_as_routes_do(app, 10, start=1000) == 10
    assert not [w for w in client.get("/readyz").get_json()["warnings"] if "records nothing of" in w]
    assert 'registry_prediction_log_held{model="hot"} 0.0' in client.get("/metrics").get_data(as_text=True)
    with app.app_context():
        assert log_bounds.usage().bytes <= bound
        kept_ids = set(db.session.execute(select(LoggedPrediction.request_id)).scalars())
    assert set(lake_rows(blocked / "lake")["request_id"]) | kept_ids >= {f"hot-{i}" for i in range(1000, 1010)}


def test_nothing_is_exported_twice_after_a_restart(app, exporting, model, lake_dir):
    offer(app, 20, age=OLD)
    export_turn(app)
    first = manifest(lake_dir)

    again = exporting()  # a restart: another process on the same database and lake
    assert export_turn(again) == []
    assert manifest(lake_dir) == first
    offer(again, 5, start=20, age=OLD)
    assert sum(step.rows for step in export_turn(again)) == 5
    found = lake_rows(lake_dir)["request_id"].tolist()
    assert sorted(found) == sorted(f"hot-{i}" for i in range(25))


def test_an_export_cut_short_is_done_again_into_the_same_files(app, exporting, model, lake_dir, monkeypatch):
    offer(app, 20, age=OLD)
    put = lakes.DirectoryLake.put

    def crash_at_the_manifest(self, key, data):
        if key.endswith("_manifest.json"):
            raise lakes.LakeUnavailable("cut short")
        put(self, key, data)

    monkeypatch.setattr(lakes.DirectoryLake, "put", crash_at_the_manifest)
    assert export_turn(app) == []
    written = sorted(path.name for path in lake_dir.rglob("*.parquet"))
    assert written  # the files went, the manifest did not
    offer(app, 7, start=20, age=OLD)  # more rows meanwhile: the retry still does the same rows first
    monkeypatch.setattr(lakes.DirectoryLake, "put", put)

    restarted = exporting()
    assert [step.rows for step in export_turn(restarted)] == [20]  # the same rows first, into the same files
    assert sorted(path.name for path in lake_dir.rglob("*.parquet")) == written
    export_turn(restarted)
    found = lake_rows(lake_dir)["request_id"].tolist()
    assert sorted(found) == sorted(f"hot-{i}" for i in range(27))  # each once
    assert manifest(lake_dir)["rows"] == 27
    assert not list(lake_dir.rglob(".*"))  # no temporary file left


@pytest.mark.parametrize("where", ["gs://bucket/prefix", "ftp://host/dir"])
def test_a_place_it_cannot_export_to_stops_the_start(build_app, where):
    with pytest.raises(SystemExit, match="is not a place the prediction log can export to"):
        build_app(PREDICTION_LOG_EXPORT=where)


def test_rows_round_trip_through_s3(exporting, ci, analyst, s3_server, s3_prefix):
    bucket, prefix = s3_prefix
    env = s3_server.env(bucket, prefix)
    where = f"s3://{bucket}/{prefix}/lake"
    app = exporting(PREDICTION_LOG_EXPORT=where, AWS_ENDPOINT_URL=env["AWS_ENDPOINT_URL"],
                    AWS_ACCESS_KEY_ID=env["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY=env["AWS_SECRET_ACCESS_KEY"],
                    AWS_REGION=env["AWS_REGION"])
    client = app.test_client()
    upload_ok(client, ci, "hot", scaled_sum(1))
    ids = offer(app, 25, age=OLD)
    labels = [{"request_id": request_id, "label": i} for i, request_id in enumerate(ids[:5])]
    assert client.post("/models/hot/feedback", json={"items": labels}, headers=ci).get_json()["applied"] == 5
    before = logged(app)

    assert sum(step.rows for step in export_turn(app)) == 25
    assert export_turn(app) == []  # nothing twice

    s3 = fs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], access_key=env["AWS_ACCESS_KEY_ID"],
                         secret_key=env["AWS_SECRET_ACCESS_KEY"], region=env["AWS_REGION"])
    found = pd.read_parquet(f"{bucket}/{prefix}/lake", filesystem=s3).sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(found[before.columns], before, check_dtype=False)
    assert [json.loads(label) for label in found["label"][:5]] == [0, 1, 2, 3, 4]
    with s3.open_input_stream(f"{bucket}/{prefix}/lake/model=hot/_manifest.json") as stream:
        files = json.loads(stream.read())["files"]
    for entry in files:
        with s3.open_input_stream(f"{bucket}/{prefix}/lake/{entry['path']}") as stream:
            assert hashlib.sha256(stream.read()).hexdigest() == entry["sha256"]
    assert the_log(app).prune() == 25
    assert client.get("/models/hot/predictions", headers=analyst).get_json()["exported_to"]["location"] == \
        f"{where}/model=hot"


def test_an_s3_lake_that_refuses_keeps_the_rows(exporting, ci, s3_server, s3_prefix):
    bucket, prefix = s3_prefix
    env = s3_server.env(bucket, prefix)
    app = exporting(PREDICTION_LOG_EXPORT=f"s3://{bucket}/{prefix}/lake", AWS_ENDPOINT_URL=env["AWS_ENDPOINT_URL"],
                    AWS_ACCESS_KEY_ID=env["AWS_ACCESS_KEY_ID"], AWS_SECRET_ACCESS_KEY="not-the-secret",
                    AWS_REGION=env["AWS_REGION"])
    client = app.test_client()
    upload_ok(client, ci, "hot", scaled_sum(1))
    offer(app, 5, age=OLD)
    assert export_turn(app) == []
    assert the_log(app).prune() == 0
    assert any("could not be exported to s3://" in w for w in client.get("/readyz").get_json()["warnings"])


def test_the_command_exports_what_is_due_holding_the_lease(app, model, lake_dir):
    offer(app, 8, age=OLD)
    runner = app.test_cli_runner()
    done = runner.invoke(args=["monitoring", "export-log"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"exported": [{"model": "hot", "rows": 8, "files": [
        entry["path"] for entry in manifest(lake_dir)["files"]]}], "failing": []}
    assert json.loads(runner.invoke(args=["monitoring", "export-log"]).stdout)["exported"] == []  # nothing twice
    with app.app_context():
        assert leases.hold(log_export.LEASE, "another-process", seconds=60)  # let go by the command
    held = runner.invoke(args=["monitoring", "export-log"])
    assert held.exit_code == 1 and "another process holds the prediction-log-export lease" in held.output


def test_the_command_says_when_there_is_nowhere_to_export(build_app):
    done = build_app().test_cli_runner().invoke(args=["monitoring", "export-log"])
    assert done.exit_code == 2 and "PREDICTION_LOG_EXPORT is not set" in done.output


@contextmanager
def vacuum_lock(app):
    """Hold the lock a VACUUM of the log holds (pruning's, or autovacuum's) until the block ends."""
    with app.app_context():
        with db.engine.connect() as connection, connection.begin():
            connection.execute(text(f"LOCK TABLE {LoggedPrediction.__tablename__} IN SHARE UPDATE EXCLUSIVE MODE"))
            yield


@pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL's locks: SQLite's writers take turns")
def test_an_export_waits_out_a_vacuum_of_the_log_a_try_at_a_time(app, model, monkeypatch):
    offer(app, 12, age=OLD)
    monkeypatch.setattr(log_export, "LOCK_TIMEOUT_MS", 100)
    tries, write_transaction = [], log_export.write_transaction

    def counted(*args):
        tries.append(1)
        return write_transaction(*args)

    monkeypatch.setattr(log_export, "write_transaction", counted)
    with ThreadPoolExecutor(1) as pool:
        with vacuum_lock(app):
            turn = pool.submit(export_turn, app)
            wait_for(lambda: len(tries) >= 3, "the exporter refused the lock twice and trying again")
            assert not turn.done()
        assert [step.rows for step in turn.result(timeout=60)] == [12]


@pytest.mark.skipif(BACKEND != "postgresql", reason="PostgreSQL's locks: SQLite's writers take turns")
def test_a_turn_the_log_stays_locked_through_exports_nothing_and_the_next_one_does(app, model, lake_dir, monkeypatch,
                                                                                     caplog):
    offer(app, 12, age=OLD)
    exporter = app.extensions["background"][4]
    monkeypatch.setattr(log_export, "LOCK_TIMEOUT_MS", 100)
    monkeypatch.setattr(exporter, "settings", replace(exporter.settings, every_seconds=0.5))
    with vacuum_lock(app):
        assert export_turn(app) == []
    assert "locked by its writers, pruning or a vacuum for all of this export's turn" in caplog.text
    assert not lake_dir.exists()
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(LoggedPrediction)).scalar() == 12
    assert [step.rows for step in export_turn(app)] == [12]


def withheld(model: str = "hot") -> float:
    """Answers of ``model`` the sample drew and the log did not record because the model was held."""
    return REGISTRY.get_sample_value("registry_prediction_log_withheld_total", {"model": model}) or 0.0


def test_a_flood_while_the_export_stalls_stays_within_the_overdraft(exporting, ci, monkeypatch):
    """Issue 67, item 17: an export that lags (here its write waits until the test lets it go) neither fails
    nor takes the rows; a flood meanwhile went to 4.8 times the bound. It stays within 125 % of the model's
    share, and every answer not logged is counted."""
    app = exporting(PREDICTION_LOG_MAX_MB=0.25)
    client = app.test_client()
    upload_ok(client, ci, "hot", scaled_sum(1))
    bound = 0.25 * log_bounds.MB
    offer_as_routes_do(app, 100, start=0)  # ~0.25 MB: rows due for the lake ahead of the bound
    writing, released = threading.Event(), threading.Event()
    put = lakes.DirectoryLake.put

    def stalled(self, key, data):
        writing.set()
        released.wait(120)
        put(self, key, data)

    monkeypatch.setattr(lakes.DirectoryLake, "put", stalled)
    before = withheld()
    with ThreadPoolExecutor(1) as pool:
        turn = pool.submit(export_turn, app)
        assert writing.wait(60), "the export did not start writing"
        kept = sum(offer_as_routes_do(app, 50, start=100 + step * 50) for step in range(12))  # ~1.5 MB: six bounds
        with app.app_context():
            held_bytes = log_bounds.usage().bytes
        warnings = client.get("/readyz").get_json()["warnings"]
        released.set()
        assert sum(step.rows for step in turn.result(timeout=120)) > 0
    assert held_bytes <= bound * log_bounds.OVERDRAFT + bound / 50, held_bytes / bound
    assert kept < 600 and withheld() - before == 600 - kept  # what was not logged is counted
    assert any("the prediction log records nothing of 'hot'" in w for w in warnings), warnings


def test_a_flood_to_a_lake_that_cannot_be_written_stays_within_the_overdraft_from_its_first_answer(exporting, ci,
                                                                                                    tmp_path):
    """Issue 67, item 17: with the lake's directory read-only, a flood before and after the export's first
    failed attempt went to 185 % of the model's share; it stays within the documented 125 %. (A file stands
    where the lake's folder should be: the directory cannot be written, which a mode would not make so for
    the root the tests may run as.)"""
    blocked = tmp_path / "read-only"
    blocked.write_text("a file where the lake's folder should be")
    app = exporting(PREDICTION_LOG_EXPORT=str(blocked / "lake"), PREDICTION_LOG_MAX_MB=0.25)
    client = app.test_client()
    upload_ok(client, ci, "hot", scaled_sum(1))
    bound = 0.25 * log_bounds.MB
    before = withheld()
    kept = sum(offer_as_routes_do(app, 50, start=step * 50) for step in range(6))  # before the export's first turn
    with app.app_context():
        first = log_bounds.usage().bytes
    assert export_turn(app) == []  # it fails
    kept += sum(offer_as_routes_do(app, 50, start=300 + step * 50) for step in range(6))
    with app.app_context():
        then = log_bounds.usage().bytes
    for held_bytes in (first, then):
        assert bound < held_bytes <= bound * log_bounds.OVERDRAFT + bound / 50, held_bytes / bound
    assert withheld() - before == 600 - kept
    assert 'registry_prediction_log_withheld_total{model="hot"}' in client.get("/metrics").get_data(as_text=True)
