"""Logged explanations (issue 43, "Beyond one answer"): a model's ``prediction_log.explain`` share has the
log's writer explain that share of its logged answers with the version that answered, off the request
path; the explanations are kept with the row, add up to its answer, count in its bytes, go to the lake,
and are shown only where logged inputs are (the right ``read_inputs``). A version that cannot be explained
per input column logs none, and answers as before."""
import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import RandomForestClassifier
from sqlalchemy import select

from registry.db import db
from registry.monitoring import lake_files, log_bounds
from registry.monitoring.logged_explanations import TimeBudget
from registry.monitoring.tables import LoggedPrediction
from tests.helpers import assert_problem, upload_ok

RNG = np.random.default_rng(5)
X = RNG.normal(size=(200, 3))
NAMES = ["x0", "x1", "x2"]
CLASSES = (X[:, 0] + X[:, 1] > 0).astype(int)
ROWS = X[:4].tolist()


@pytest.fixture
def app(build_app):
    return build_app(PREDICTION_LOG_SAMPLE=1.0)


@pytest.fixture
def forest():
    return RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(X, CLASSES)


@pytest.fixture
def served(client, ci, forest):
    upload_ok(client, ci, "loans", forest, {"feature_names": NAMES})
    assert client.post("/models/loans/versions/1/promote", json={}, headers=ci).status_code == 200
    return "loans"


def explain_share(client, ci, share, name="loans"):
    response = client.patch(f"/models/{name}", json={"prediction_log": {"explain": share}}, headers=ci)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["prediction_log"]


def answer(app, client, rows=ROWS, *, name="loans", ids=("r-0",), **body):
    answers = [client.post(f"/models/{name}/production/predict", json={"instances": rows, **body},
                           headers={"X-Request-ID": request_id}) for request_id in ids]
    assert all(a.status_code == 200 for a in answers), answers[0].get_json()
    assert app.extensions["model_registry"].prediction_log.flush(), "the prediction log did not drain"
    return answers


def items(client, headers, name="loans") -> list[dict]:
    response = client.get(f"/models/{name}/predictions?limit=1000", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def test_the_setting_is_off_by_default_shown_by_get_and_set_by_ci(client, served, ci):
    assert client.get("/models/loans").get_json()["prediction_log"]["explain"] == 0.0
    assert explain_share(client, ci, 0.25)["explain"] == 0.25
    assert client.get("/models/loans").get_json()["prediction_log"] == {"sample": 1.0, "max_mb": None, "explain": 0.25}
    assert explain_share(client, ci, None)["explain"] == 0.0  # null goes back to none


@pytest.mark.parametrize("value, fragment", [
    (1.5, "explain is a share of the logged answers, from 0 to 1"),
    (-0.1, "from 0 to 1"),
    (True, "must be a finite number"),
    ("half", "must be a finite number"),
])
def test_a_share_that_is_not_a_number_from_0_to_1_is_422(client, served, ci, value, fragment):
    refused = client.patch("/models/loans", json={"prediction_log": {"explain": value}}, headers=ci)
    problem = assert_problem(refused, 422)
    assert fragment in json.dumps(problem["errors"])
    assert client.get("/models/loans").get_json()["prediction_log"]["explain"] == 0.0


def test_explained_answers_are_logged_with_attributions_adding_up_to_their_probabilities(
        app, client, served, ci, analyst, forest):
    explain_share(client, ci, 1.0)
    (plain,) = answer(app, client, ids=("r-1",))

    (item,) = items(client, analyst)
    logged = item["explanations"]
    assert (logged["space"], logged["columns"]) == ("probability", NAMES)
    assert len(logged["values"]) == len(ROWS)
    expected = forest.predict_proba(np.asarray(ROWS))
    for values, want in zip(logged["values"], expected):
        total = np.asarray(logged["base_value"]) + np.asarray(values).sum(axis=0)  # (columns, classes) summed
        np.testing.assert_allclose(total, want, atol=1e-9)
    assert plain.get_json() == {"model": "loans", "version": 1, "predictions": forest.predict(np.asarray(ROWS)).tolist()}


def test_nothing_is_explained_without_the_setting(app, client, served, analyst):
    answer(app, client)
    assert items(client, analyst)[0]["explanations"] is None


def test_the_explanations_a_caller_asked_for_are_the_ones_logged(app, client, served, ci, analyst):
    explain_share(client, ci, 1.0)
    (asked,) = answer(app, client, explain=True)

    logged = items(client, analyst)[0]["explanations"]
    shown = asked.get_json()["explanations"]
    assert logged["values"] == [[row["values"][name] for name in NAMES] for row in shown]
    assert logged["base_value"] == shown[0]["base_value"]


def test_past_the_writers_time_for_explaining_answers_are_logged_without(app, client, served, ci, analyst):
    explain_share(client, ci, 1.0)
    app.extensions["model_registry"].prediction_log.writer.explaining = TimeBudget(share=0.0, burst=0.0)
    before = explained_total(client, "skipped")

    answer(app, client, ids=("spent",))
    answer(app, client, ids=("asked",), explain=True)  # computed for the caller already: kept at no cost

    logged = {item["request_id"]: item["explanations"] for item in items(client, analyst)}
    assert logged["spent"] is None and logged["asked"]["space"] == "probability"
    assert explained_total(client, "skipped") == before + 1


def test_a_share_draws_by_request_id(app, client, served, ci, analyst):
    explain_share(client, ci, 0.5)
    answer(app, client, rows=ROWS[:1], ids=[f"draw-{i}" for i in range(120)])
    explained = [item["explanations"] is not None for item in items(client, analyst)]
    assert len(explained) == 120 and 35 <= sum(explained) <= 85


def test_a_version_that_cannot_be_explained_logs_none_and_answers_as_before(app, client, ci, analyst):
    xgboost = pytest.importorskip("xgboost")
    target = X[:, 0] * 2 - X[:, 1]
    booster = xgboost.train({"objective": "reg:squarederror", "max_depth": 3}, xgboost.DMatrix(X, target), 3)
    document = json.loads(bytes(booster.save_raw("json")))
    for tree in document["learner"]["gradient_booster"]["model"]["trees"]:
        del tree["sum_hessian"]  # no node covers: TreeSHAP has nothing to weigh paths by
    form = {"artifact": (io.BytesIO(json.dumps(document).encode()), "model.json")}
    assert client.post("/models/gbm/versions", data=form, headers=ci, content_type="multipart/form-data").status_code == 201
    assert client.post("/models/gbm/versions/1/promote", json={}, headers=ci).status_code == 200
    explain_share(client, ci, 1.0, name="gbm")
    before = explained_total(client, "unexplainable")

    (plain,) = answer(app, client, name="gbm")

    assert items(client, analyst, name="gbm")[0]["explanations"] is None
    assert plain.get_json()["predictions"] == pytest.approx(booster.predict(xgboost.DMatrix(np.asarray(ROWS))).tolist(),
                                                            rel=1e-6)
    assert explained_total(client, "unexplainable") == before + 1


def explained_total(client, outcome: str) -> float:
    """``registry_prediction_log_explained_total{outcome}`` of /metrics (0 before the first)."""
    prefix = f'registry_prediction_log_explained_total{{outcome="{outcome}"}} '
    lines = [line for line in client.get("/metrics").get_data(as_text=True).splitlines() if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_the_explanations_count_in_the_rows_bytes(app, client, served, ci):
    explain_share(client, ci, 1.0)
    answer(app, client)
    with app.app_context():
        row = db.session.execute(select(LoggedPrediction)).scalar_one()
        as_written = {column: db.session.execute(select(getattr(LoggedPrediction, column).cast(db.Text))).scalar_one()
                      for column in ("inputs", "outputs", "explanations")}
    assert row.explanations is not None
    assert row.bytes == log_bounds.row_bytes(request_id=row.request_id, alias=row.alias, route=row.route, **as_written)
    assert row.bytes > log_bounds.row_bytes(request_id=row.request_id, alias=row.alias, route=row.route,
                                            inputs=as_written["inputs"], outputs=as_written["outputs"])


@pytest.mark.parametrize("caller, status", [
    ("anonymous", 401), ("reader", 403), ("feedback", 403), ("ci", 403),
    ("analyst scoped to other models", 403), ("analyst scoped without read_inputs", 403),
])
@pytest.mark.parametrize("accept", ["application/json", "text/csv"])
def test_explanations_are_refused_to_callers_without_read_inputs(app, client, served, ci, tokens, caller, status,
                                                                 accept):
    explain_share(client, ci, 1.0)
    answer(app, client)
    headers = {
        "anonymous": {},
        "reader": tokens("r", "reader"), "feedback": tokens("f", "feedback"), "ci": tokens("c", "ci"),
        "analyst scoped to other models": tokens("s1", "analyst", [{"models": ["other-*"], "rights": ["read", "read_inputs"]}]),
        "analyst scoped without read_inputs": tokens("s2", "analyst", [{"models": ["loans"], "rights": ["read"]}]),
    }[caller]
    refused = client.get("/models/loans/predictions", headers={**headers, "Accept": accept})
    assert_problem(refused, status)
    assert "base_value" not in refused.get_data(as_text=True)


def test_an_analyst_scoped_to_the_model_reads_them_as_json_and_csv(app, client, served, ci, tokens):
    explain_share(client, ci, 1.0)
    answer(app, client)
    scoped = tokens("s", "analyst", [{"models": ["loans"], "rights": ["read", "read_inputs"]}])
    assert items(client, scoped)[0]["explanations"]["space"] == "probability"
    csv = client.get("/models/loans/predictions", headers={**scoped, "Accept": "text/csv"}).get_data(as_text=True)
    header, first = pd.read_csv(pd.io.common.StringIO(csv)).columns, pd.read_csv(pd.io.common.StringIO(csv)).iloc[0]
    assert "explanations" in header and json.loads(first["explanations"])["columns"] == NAMES


def test_the_lake_holds_the_explanations_and_reads_older_files_beside_them(build_app, tmp_path, ci, forest):
    lake = tmp_path / "lake"
    app = build_app(PREDICTION_LOG_SAMPLE=1.0, PREDICTION_LOG_EXPORT=str(lake), PREDICTION_LOG_EXPORT_SECONDS=0,
                    PREDICTION_LOG_MAX_MB=0.005)  # a tiny bound: the rows are exported ahead of it at once
    client = app.test_client()
    upload_ok(client, ci, "loans", forest, {"feature_names": NAMES})
    assert client.post("/models/loans/versions/1/promote", json={}, headers=ci).status_code == 200
    explain_share(client, ci, 1.0)
    answer(app, client, ids=[f"x-{i}" for i in range(20)])
    with app.app_context():
        assert app.extensions["background"][4].turn(), "nothing was exported"

    manifest = json.loads((lake / "model=loans" / "_manifest.json").read_text())
    assert manifest["schema_version"] == 2 and {f["schema_version"] for f in manifest["files"]} == {2}
    # A file of schema version 1 (written before explanations were kept) beside the new ones.
    older = pd.DataFrame({name: [None] for name in lake_files.SCHEMA.names if name != "explanations"})
    older = older.assign(id=0, request_id="old", version=1, latency_ms=1.0, status=200,
                         at=pd.Timestamp("2026-01-01", tz="UTC"), labelled_at=pd.NaT)
    (lake / "model=loans" / "day=2026-01-01").mkdir()
    pq.write_table(pa.Table.from_pandas(older, schema=pa.schema([f for f in lake_files.SCHEMA if f.name != "explanations"]),
                                        preserve_index=False), lake / "model=loans" / "day=2026-01-01" / "part-old.parquet")

    read = ds.dataset(lake / "model=loans", schema=lake_files.SCHEMA, format="parquet").to_table().to_pandas()
    assert read.loc[read["request_id"] == "old", "explanations"].isna().all()
    new = read[read["request_id"] != "old"]
    assert len(new) >= 1 and all(json.loads(text)["space"] == "probability" for text in new["explanations"])
