"""Batch scoring on real engines against a real registry: Dask (LocalCluster, worker processes), Spark
(local[2]) and the ``score`` CLI answer every row as the online route does, bit for bit (checked on a
sample of every job), score with the version planned even when the alias moves, fail naming the first
bad row, and are recorded as batch runs."""
import itertools
import json
import os
import pty
import select
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge

from config import BASE_DIR
from registry_client import InvalidRows, RegistryClient, engines
from tests.databases import BACKEND
from trainers.cli import cli

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("the engines, the executors' cache and the answers are what it tests; batch runs are recorded on "
            "both backends in tests/integration/test_batch_runs_api.py: the SQLite pass runs it"),
)

FEATURES = ["tenure", "spend", "calls", "age"]
ROWS = 3_000
PARTITIONS = 4
SAMPLE = 60


def _frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(ROWS, len(FEATURES))), columns=FEATURES)
    frame.insert(0, "customer", [f"c{i}" for i in range(ROWS)])
    return frame


FRAME = _frame()
LABELS = np.where(FRAME["tenure"] + FRAME["spend"] > 0, "stay", "leave")


@pytest.fixture(scope="module")
def admin(live_registry) -> RegistryClient:
    return RegistryClient(live_registry.url, live_registry.admin_token)


@pytest.fixture(scope="module")
def models(admin):
    """``churn`` v1 and v2 (two forests that answer differently), production on v1; ``spend`` a ridge regression."""
    X = FRAME[FEATURES]
    for seed in (1, 2):
        forest = RandomForestClassifier(n_estimators=25, max_depth=6, random_state=seed).fit(X.sample(frac=0.5, random_state=seed), LABELS[X.sample(frac=0.5, random_state=seed).index])
        admin.upload("churn", forest)
    admin.promote("churn", 1, reason="first")
    admin.upload("spend", Ridge(alpha=0.5).fit(X[["tenure", "calls", "age"]], X["spend"] * 3 + 1))
    admin.promote("spend", 1, reason="first")


@pytest.fixture
def cache(tmp_path) -> str:
    return str(tmp_path / "artifacts")


def assert_online_answers(client, model, version, scored: pd.DataFrame, features, proba=False):
    """A sample of ``scored`` rows sent to the online route pinned to ``version``: the same answers, bit for bit."""
    sample = scored.sample(SAMPLE, random_state=0)
    online = client.predict(model, sample[features], ref=version, proba=proba)
    assert online.version == version
    assert sample["prediction"].tolist() == online.predictions
    if proba:
        columns = [f"probability_{label}" for label in online.classes]
        assert sample[columns].to_numpy().tolist() == online.probabilities
    assert (scored["model_version"] == version).all()


def test_dask_scores_every_partition_as_the_online_route_does(admin, models, dask_client, cache):
    import dask.dataframe as dd

    ddf = dd.from_pandas(FRAME, npartitions=PARTITIONS)
    churn = admin.predict_dask(ddf, "churn", admin.plan_batch("churn", "production", cache_dir=cache),
                               proba=True).compute()
    spend = admin.predict_dask(ddf, "spend", admin.plan_batch("spend", 1, cache_dir=cache)).compute()

    assert len(churn) == ROWS and churn["customer"].tolist() == FRAME["customer"].tolist()
    assert_online_answers(admin, "churn", 1, churn, FEATURES, proba=True)
    assert_online_answers(admin, "spend", 1, spend, ["tenure", "calls", "age"])
    assert sorted(p.name for p in __import__("pathlib").Path(cache).glob("*.artifact")) == sorted(
        f"{admin.version(name, 1).sha256}.artifact" for name in ("churn", "spend"))  # one file per version


def test_an_alias_moved_after_planning_still_scores_with_the_planned_version(admin, models, dask_client, cache):
    import dask.dataframe as dd

    plan = admin.plan_batch("churn", "production", cache_dir=cache)
    admin.promote("churn", 2, reason="moved while the job runs")
    try:
        scored = admin.predict_dask(dd.from_pandas(FRAME, npartitions=PARTITIONS), "churn", plan).compute()
        assert (plan.version, plan.alias) == (1, "production")
        assert_online_answers(admin, "churn", 1, scored, FEATURES)
        assert admin.predict("churn", FRAME[FEATURES][:SAMPLE]).predictions != scored["prediction"][:SAMPLE].tolist()
    finally:
        admin.promote("churn", 1, reason="back")


def test_a_bad_partition_fails_the_dask_job_naming_its_first_bad_row(admin, models, dask_client, cache):
    import dask.dataframe as dd

    frame = FRAME.copy()
    frame.loc[2 * ROWS // PARTITIONS + 17, "calls"] = np.nan
    frame.loc[2 * ROWS // PARTITIONS + 40, "calls"] = np.inf
    plan = admin.plan_batch("churn", 1, cache_dir=cache)

    with pytest.raises(InvalidRows) as refused:
        admin.predict_dask(dd.from_pandas(frame, npartitions=PARTITIONS), "churn", plan).compute()

    assert "partition 2" in str(refused.value) and "row 17, feature calls" in str(refused.value)


def spark_column(admin, spark, model, plan, *, arrow: bool, proba: bool = False):
    """The client's Spark column: its Arrow UDF (what pyspark 4.1 and later get), or the pandas UDF of older ones."""
    if arrow:
        return admin.spark_udf(spark, model, plan, proba=proba)
    return engines.spark_column(spark, plan, proba=proba, arrow=False)


@pytest.mark.parametrize("arrow", [True, False], ids=["arrow-udf", "pandas-udf"])
def test_spark_scores_as_the_online_route_does_and_its_column_names_the_version(admin, models, spark, cache, arrow):
    plan = admin.plan_batch("churn", "production", cache_dir=cache)
    df = spark.createDataFrame(FRAME).repartition(PARTITIONS)
    scored_df = df.withColumn("score", spark_column(admin, spark, "churn", plan, arrow=arrow, proba=True))

    assert scored_df.schema["score"].metadata == {"registry_model": "churn", "registry_version": 1,
                                                  "registry_sha256": plan.sha256}
    rows = scored_df.toPandas()
    scored = pd.DataFrame({"prediction": [s["prediction"] for s in rows["score"]], "model_version": 1,
                           **{f"probability_{c}": [s["probabilities"][k] for s in rows["score"]]
                              for k, c in enumerate(plan.classes)}, **{f: rows[f] for f in FEATURES}})
    assert len(scored) == ROWS
    assert_online_answers(admin, "churn", 1, scored, FEATURES, proba=True)


@pytest.mark.parametrize("arrow", [True, False], ids=["arrow-udf", "pandas-udf"])
def test_a_bad_row_fails_the_spark_job_naming_it(admin, models, spark, cache, arrow):
    frame = FRAME.copy()
    frame.loc[5, "tenure"] = np.nan
    df = spark.createDataFrame(frame).coalesce(1)
    plan = admin.plan_batch("churn", 1, cache_dir=cache)

    with pytest.raises(Exception) as refused:
        df.withColumn("score", spark_column(admin, spark, "churn", plan, arrow=arrow)).collect()

    assert "partition 0: row 5, feature tenure" in str(refused.value)


def test_spark_frames_are_scored_whole_as_the_online_route_does_every_column_kept(admin, models, spark, cache):
    plan = admin.plan_batch("churn", "production", cache_dir=cache)
    df = spark.createDataFrame(FRAME).repartition(PARTITIONS)
    scored_df = admin.predict_spark(df, "churn", plan, proba=True)

    assert scored_df.columns == [*FRAME.columns, "prediction", "probability_leave", "probability_stay",
                                 "model_version"]
    assert scored_df.schema["prediction"].metadata == {"registry_model": "churn", "registry_version": 1,
                                                       "registry_sha256": plan.sha256}
    scored = scored_df.toPandas()
    assert sorted(scored["customer"]) == sorted(FRAME["customer"])
    kept = scored.set_index("customer").loc[FRAME["customer"], FEATURES]
    assert np.array_equal(kept.to_numpy(), FRAME[FEATURES].to_numpy())  # every column back as it went
    assert_online_answers(admin, "churn", 1, scored, FEATURES, proba=True)
    spend = admin.predict_spark(df.select("customer", "tenure", "calls", "age"), "spend", 1).toPandas()
    assert_online_answers(admin, "spend", 1, spend, ["tenure", "calls", "age"])
    assert admin.predict_spark(df.where("tenure > 100"), "churn", plan).toPandas().empty  # no row: no score
    only = admin.predict_spark(df, "churn", plan, keep=["customer"]).toPandas().set_index("customer")
    assert only.columns.tolist() == ["prediction", "model_version"]
    assert only["prediction"].to_dict() == scored.set_index("customer")["prediction"].to_dict()


def test_a_bad_row_fails_the_spark_frame_job_naming_it(admin, models, spark, cache):
    frame = FRAME.copy()
    frame.loc[1234, "calls"] = np.inf
    df = spark.createDataFrame(frame).coalesce(1)

    with pytest.raises(Exception) as refused:
        admin.predict_spark(df, "churn", admin.plan_batch("churn", 1, cache_dir=cache)).collect()

    assert "partition 0: row 1234, feature calls" in str(refused.value)


def test_a_frame_without_a_feature_or_with_a_score_column_is_refused_before_the_job_runs(admin, models, spark, cache):
    plan = admin.plan_batch("churn", 1, cache_dir=cache)
    df = spark.createDataFrame(FRAME)

    with pytest.raises(InvalidRows, match=r"churn v1 cannot score this frame: the frame has no columns \['calls'\]"):
        admin.predict_spark(df.drop("calls"), "churn", plan)
    with pytest.raises(InvalidRows, match=r"the frame has no columns \['id'\]"):
        admin.predict_spark(df, "churn", plan, keep=["id"])
    with pytest.raises(InvalidRows, match=r"the frame already has the columns \['prediction'\] the scores go in"):
        admin.predict_spark(df.withColumnRenamed("customer", "prediction"), "churn", plan)
    renamed = df.withColumnRenamed("customer", "prediction")  # a column not kept is no clash
    assert admin.predict_spark(renamed, "churn", plan, keep=["tenure"]).columns == ["tenure", "prediction",
                                                                                    "model_version"]


def test_integer_columns_are_scored_as_numbers_and_a_null_in_one_fails_the_job_never_a_silent_null(admin, models,
                                                                                                   spark, cache):
    from pyspark.sql import functions as F

    plan = admin.plan_batch("spend", 1, cache_dir=cache)
    frame = FRAME[["tenure", "calls", "age"]].round().astype("int64")
    df = spark.createDataFrame(frame).coalesce(1)
    assert dict(df.dtypes)["calls"] == "bigint"
    scored = df.withColumn("prediction", admin.spark_udf(spark, "spend", plan)).toPandas()
    scored["model_version"] = 1
    assert_online_answers(admin, "spend", 1, scored, ["tenure", "calls", "age"])

    nulled = df.withColumn("calls", F.when(F.monotonically_increasing_id() == 7, None).otherwise(F.col("calls")))
    with pytest.raises(Exception) as refused:
        nulled.withColumn("prediction", admin.spark_udf(spark, "spend", plan)).collect()
    assert "partition 0: row 7, feature calls" in str(refused.value)


def test_a_planned_job_is_recorded_against_the_version_it_resolved_to(admin, models, cache):
    from datetime import datetime, timedelta, timezone

    plan = admin.plan_batch("churn", "production", cache_dir=cache)
    ended = datetime.now(timezone.utc)
    run = admin.record_batch_run(plan, engine="dask", inputs=["s3://lake/*.parquet"], outputs=["s3://scores/"],
                                 rows=ROWS, status="succeeded", started_at=ended - timedelta(minutes=3),
                                 finished_at=ended)

    assert (run.model, run.version, run.alias, run.rows, run.created_by) == ("churn", 1, "production", ROWS, "admin")
    assert next(admin.batch_runs("churn", "production")).id == run.id


def score(live, *args) -> subprocess.CompletedProcess:
    env = dict(live.env, REGISTRY_TOKEN=live.admin_token, REGISTRY_URL=live.url)
    result = CliRunner().invoke(cli, ["score", *map(str, args)], env=env, prog_name="python -m trainers")
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def test_the_score_command_writes_parquet_and_records_the_run(live_registry, admin, models, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("REGISTRY_CACHE_DIR", str(tmp_path / "cache"))
    for part in range(2):
        FRAME[part::2].to_parquet(tmp_path / f"part-{part}.parquet")
    result = score(live_registry, "--model", "churn@production", "--input", tmp_path / "part-*.parquet",
                   "--output", tmp_path / "scores", "--json")

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert {k: outcome[k] for k in ("model", "version", "alias", "rows", "engine")} == {
        "model": "churn", "version": 1, "alias": "production", "rows": ROWS, "engine": "local"}
    scored = pd.concat(pd.read_parquet(tmp_path / "scores" / f"part-{part}.parquet") for part in range(2))
    assert_online_answers(admin, "churn", 1, scored, FEATURES)
    run = next(admin.batch_runs("churn", 1))
    assert (run.id, run.status, run.rows, run.engine, run.alias, run.outputs) == (
        outcome["batch_run_id"], "succeeded", ROWS, "local", "production", [str(tmp_path / "scores")])


def test_the_score_command_on_dask_fails_naming_the_bad_row_and_records_the_failure(
        live_registry, admin, models, dask_client, tmp_path):
    frame = FRAME[:100].copy()
    frame["age"] = frame["age"].astype(object)
    frame.loc[42, "age"] = "old"
    frame.to_csv(tmp_path / "rows.csv", index=False)
    result = score(live_registry, "--model", "churn/2", "--input", tmp_path / "rows.csv", "--output",
                   tmp_path / "scores", "--engine", "dask")

    assert result.returncode == 1
    assert "row 42, feature age" in result.stderr and "churn v2" in result.stderr
    run = next(admin.batch_runs("churn", 2))
    assert (run.status, run.engine, run.alias, run.rows) == ("failed", "dask", None, 0)
    assert "row 42, feature age" in run.detail


def test_the_score_command_on_spark_parses_csv_cells_as_the_csv_route_does(live_registry, admin, models, spark, tmp_path):
    FRAME[:500].to_csv(tmp_path / "rows.csv", index=False)
    result = score(live_registry, "--model", "churn@production", "--input", tmp_path / "rows.csv", "--output",
                   tmp_path / "scores", "--engine", "spark", "--proba")

    assert result.returncode == 0, result.stderr
    assert "scored 500 rows with churn v1 (planned from production)" in result.stdout
    scored = pd.concat(pd.read_csv(part) for part in sorted((tmp_path / "scores").glob("part-*.csv")))
    assert_online_answers(admin, "churn", 1, scored, FEATURES, proba=True)
    assert next(admin.batch_runs("churn", 1)).engine == "spark"


FADING = itertools.count()


@pytest.fixture
def fading(admin):
    """A model of its own whose versions these tests archive: ``v1`` and ``v2`` of a fresh name, no alias."""
    name = f"fading-{next(FADING)}"
    for alpha in (0.5, 2.0):
        admin.upload(name, Ridge(alpha=alpha).fit(FRAME[FEATURES[1:]], FRAME["tenure"]))
    return name


def leftovers(folder) -> list[str]:
    """What a scoring job left in ``folder`` beside its inputs: its output, or a staging directory."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("rows"))


def test_the_score_command_refuses_an_archived_version_before_it_scores(live_registry, admin, fading, tmp_path):
    FRAME[:50].to_parquet(tmp_path / "rows.parquet")
    admin.archive(fading, 1)

    result = score(live_registry, "--model", f"{fading}/1", "--input", tmp_path / "rows.parquet", "--output",
                   tmp_path / "scores")

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"{fading} v1 is archived" in result.stderr
    assert leftovers(tmp_path) == [] and list(admin.batch_runs(fading, 1)) == []


def test_a_version_archived_while_the_job_scores_fails_the_job_and_leaves_no_output(
        live_registry, admin, fading, tmp_path, monkeypatch):
    from trainers import scoring

    def archived_meanwhile(plan, files, fmt, job):
        rows = local(plan, files, fmt, job)
        admin.archive(fading, plan.version)
        return rows

    local = scoring.ENGINE_RUNS["local"]
    monkeypatch.setitem(scoring.ENGINE_RUNS, "local", archived_meanwhile)
    FRAME[:50].to_parquet(tmp_path / "rows.parquet")
    (tmp_path / "scores").mkdir()  # an empty --output is kept empty

    result = score(live_registry, "--model", f"{fading}/2", "--input", tmp_path / "rows.parquet", "--output",
                   tmp_path / "scores")

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"{fading} v2 was archived while the job scored" in result.stderr
    assert leftovers(tmp_path) == ["scores"] and list((tmp_path / "scores").iterdir()) == []
    [run] = admin.batch_runs(fading, 2)
    assert (run.status, run.outputs, run.rows) == ("failed", [], 0)
    assert "was archived while the job scored" in run.detail


def test_a_good_file_then_a_bad_one_leaves_no_output_and_records_none(live_registry, admin, models, tmp_path):
    FRAME[:40].to_parquet(tmp_path / "rows-1.parquet")
    bad = FRAME[40:80].copy()
    bad.loc[bad.index[7], "calls"] = np.nan
    bad.to_parquet(tmp_path / "rows-2.parquet")

    result = score(live_registry, "--model", "churn/1", "--input", tmp_path / "rows-*.parquet", "--output",
                   tmp_path / "scores")

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "rows-2.parquet: row 7, feature calls" in result.stderr
    assert leftovers(tmp_path) == []
    run = next(admin.batch_runs("churn", 1))
    assert (run.status, run.outputs) == ("failed", [])


HOSTILE = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "=HYPERLINK(A1)"]  # no quotes: Spark escapes them otherwise


@pytest.mark.parametrize("engine", ["local", "dask", "spark"])
def test_csv_output_opens_no_formula_and_keeps_numbers_as_written(live_registry, admin, models, tmp_path, engine,
                                                                   request):
    if engine != "local":
        request.getfixturevalue({"dask": "dask_client", "spark": "spark"}[engine])
    rows = FRAME[:len(HOSTILE)].copy()
    rows["customer"] = HOSTILE
    rows.to_csv(tmp_path / "rows.csv", index=False)

    result = score(live_registry, "--model", "churn/1", "--input", tmp_path / "rows.csv", "--output",
                   tmp_path / "scores", "--engine", engine)

    assert result.returncode == 0, (result.stdout, result.stderr)
    written = pd.concat(pd.read_csv(part, dtype=str, keep_default_na=False)
                        for part in sorted((tmp_path / "scores").glob("*.csv")))
    assert sorted(written["customer"]) == sorted("'" + text for text in HOSTILE)
    sent = pd.read_csv(tmp_path / "rows.csv", dtype=str).set_index("tenure")
    kept = written.set_index("tenure")
    assert sorted(kept.index) == sorted(sent.index)  # negative numbers among them: no quote before a number
    assert (kept.loc[sent.index, FEATURES[1:]].to_numpy() == sent[FEATURES[1:]].to_numpy()).all()
    assert set(written["prediction"]) <= {"stay", "leave"}


@pytest.mark.parametrize("args, code, said", [
    (["--model", "churn"], 2, "NAME@ALIAS"),
    (["--model", "churn@Production"], 2, "NAME@ALIAS"),
    (["--model", "churn/v2"], 2, "NAME/VERSION"),
    (["--model", "churn@production", "--engine", "ray"], 2, "ray"),
    (["--model", "churn@production", "--input", "nowhere/*.parquet"], 1, "matches no file"),
    (["--model", "churn@production", "--input", "{csv}", "--input", "{parquet}"], 1, "must all be .parquet or all .csv"),
    (["--model", "churn@production", "--output", "{csv}"], 2, "is a file"),
    (["--model", "churn@production", "--output", "{here}"], 1, "not an empty directory"),
    (["--model", "nope@production"], 1, "does not exist"),
])
def test_the_score_command_refuses_what_it_cannot_do_before_scoring(live_registry, models, tmp_path, args, code, said):
    files = {"csv": tmp_path / "rows.csv", "parquet": tmp_path / "rows.parquet"}
    FRAME[:5].to_csv(files["csv"], index=False)
    FRAME[:5].to_parquet(files["parquet"])
    args = [arg.format(**files, here=tmp_path) for arg in args]
    args += [] if "--input" in args else ["--input", files["csv"]]
    args += [] if "--output" in args else ["--output", tmp_path / "out"]

    result = score(live_registry, *args)

    assert result.returncode == code, (result.stdout, result.stderr)
    assert said in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("scheduler", ["cluster", "local"])
def test_the_score_command_on_dask_draws_its_bar_on_a_terminal_and_keeps_stdout_for_its_json(
        live_registry, models, dask_client, tmp_path, scheduler):
    FRAME.to_parquet(tmp_path / "rows.parquet")
    env = {**os.environ, "REGISTRY_URL": live_registry.url, "REGISTRY_TOKEN": live_registry.admin_token,
           "REGISTRY_CACHE_DIR": str(tmp_path / "cache")}
    if scheduler == "cluster":
        env["DASK_SCHEDULER_ADDRESS"] = dask_client.cluster.scheduler_address
    else:
        env.pop("DASK_SCHEDULER_ADDRESS", None)
    terminal, its_end = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "trainers", "score", "--model", "churn@production", "--input",
         str(tmp_path / "rows.parquet"), "--output", str(tmp_path / "scores"), "--engine", "dask", "--json"],
        stdout=subprocess.PIPE, stderr=its_end, cwd=BASE_DIR, env=env)
    os.close(its_end)
    drawn = _read_until_closed(terminal, deadline=time.monotonic() + 120)
    printed, _ = process.communicate(timeout=30)

    assert process.returncode == 0, drawn.decode(errors="replace")
    assert json.loads(printed)["rows"] == ROWS  # stdout holds the JSON alone
    assert b"100% Completed" in drawn


def _read_until_closed(terminal: int, deadline: float) -> bytes:
    """What a process wrote to its terminal until it closed it (or the deadline passed)."""
    drawn = b""
    try:
        while time.monotonic() < deadline:
            if select.select([terminal], [], [], 1)[0]:
                chunk = os.read(terminal, 4096)
                if not chunk:
                    break
                drawn += chunk
    except OSError:  # EIO: every holder of the other end closed it
        pass
    finally:
        os.close(terminal)
    return drawn


def test_the_score_command_on_spark_runs_from_a_plain_shell_and_says_only_what_it_did(live_registry, models, tmp_path):
    """Issue 68, item 4: run as docs/batch-scoring.md shows it, with neither the venv activated nor
    PYSPARK_PYTHON set, Spark's Python workers found another python3 ("No module named 'pyarrow'"), and a
    glob's input printed a 93-line Java FileNotFoundException. The command's own session runs its workers
    on the command's interpreter and keeps Spark's log to errors."""
    FRAME[:1500].to_parquet(tmp_path / "rows-0.parquet")
    FRAME[1500:].to_parquet(tmp_path / "rows-1.parquet")
    env = {name: value for name, value in os.environ.items()
           if name not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV")}
    env.update(PATH="/usr/bin:/bin", REGISTRY_URL=live_registry.url, REGISTRY_TOKEN=live_registry.admin_token,
               REGISTRY_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-m", "trainers", "score", "--model", "churn@production", "--input",
         str(tmp_path / "rows-*.parquet"), "--output", str(tmp_path / "scores"), "--engine", "spark"],
        capture_output=True, text=True, cwd=BASE_DIR, env=env, timeout=600)

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"scored {ROWS} rows with churn v1 (planned from production)")
    noise = [line for line in done.stderr.splitlines() if "Exception" in line or "Warning" in line or "[Stage" in line]
    assert noise == [], done.stderr
