"""Batch scoring on real engines: the registry's client vs scikit-learn's own predict and MLflow's spark_udf.

``python -m bench.batch`` starts a registry (gunicorn, SQLite), registers the bench's logistic regression
and 100-tree random forest (bench/models.py), and scores ``--rows`` rows (default 2,000,000, in
``--partitions`` partitions) with each, on a Dask LocalCluster of two worker processes and on Spark
``local[2]``, one job at a time:

- **registry**: the client's ``predict_dask``, and on Spark both its ways, the ``spark_udf`` column and
  ``predict_spark`` (``mapInArrow`` over the frame, the scores alone kept) (the artifact fetched once per machine,
  loaded by the registry's restricted loader, rows checked against the signature, compiled predictor);
- **scikit-learn**: the unpickled estimator's own ``predict`` (and, in rows labelled ``predict_proba``,
  its ``predict_proba``) inside ``map_partitions`` / a ``mapInPandas``: what a team writes by hand, with no
  checks;
- **MLflow** (Spark, ``predict`` only): the estimator saved with ``mlflow.sklearn.save_model`` and scored
  by ``mlflow.pyfunc.spark_udf(spark, uri, result_type="double", env_manager="local")``. MLflow lives in a
  venv of its own (.venv-mlflow, which holds pyspark at the service's pin), so bench/batch_mlflow.py runs
  there as a subprocess with a Spark session of its own beside this process's (each idle while the other's job
  runs): the same Parquet rows, partitions, Arrow batch size and forcing (``--sink``). ``--mlflow-python``
  (default: the ``MLFLOW_PYTHON`` environment variable, else .venv-mlflow/bin/python) names its interpreter.

Rows per second of the whole job, the best of ``--rounds`` runs after one warm-up (the registry's job,
scikit-learn's and MLflow's taking turns, round after round: a run measured apart from the others once found
MLflow 20 % faster than the next run did), and whether the answers are identical bit for bit to
scikit-learn's own (row by row). Writes
``bench/results/batch-<UTC time>.*`` (and ``batch.*``). Figures only, never pass or fail.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from bench import models, report
from bench.batch_mlflow import PEER
from bench.harness import server
from bench.harness.mlflow_server import MLFLOW_PYTHON
from registry_client import RegistryClient

HERE = Path(__file__).resolve().parent
TOKEN = "bench-batch-token"
COLUMNS = [f"x{i}" for i in range(models.FEATURES)]
ARROW_BATCH = 100_000  # spark.sql.execution.arrow.maxRecordsPerBatch, here and in bench/batch_mlflow.py
METHODS = ("predict", "predict_proba")
# The goals (issue 46): (engine, model, method, which ratio, at least).
GOALS = [("spark", "forest", "predict", "mlflow_ratio", 3.0),
         ("spark", "logistic", "predict", "ratio", 1.0),
         ("dask", "logistic", "predict", "ratio", 1.0)]


def rows(count: int) -> pd.DataFrame:
    """``count`` rows like the bench models' training rows: each a training row drawn at random, plus a little
    noise. Drawn, not repeated in order: a tree walk's branches on rows that repeat every 2,000 are learnt by the
    CPU's branch predictor, which made scikit-learn's branchy walk 2.8 times faster than on the same rows
    shuffled (117 against 333 ms for 100,000 rows of the forest), and scoring data does not repeat so."""
    X, _ = models.training_data()
    rng = np.random.default_rng(0)
    drawn = X[rng.integers(0, len(X), count)] + rng.normal(scale=0.01, size=(count, X.shape[1]))
    return pd.DataFrame(drawn, columns=COLUMNS)


def _same(frame: pd.DataFrame, run: int) -> pd.DataFrame:
    return frame


def fresh(ddf, run: list):
    """``ddf`` under keys no job computed before: the scheduler hands back a result it still holds for a key
    asked again (a job's keys are its function's and arguments' tokens), which timed a repeated job at no work."""
    run[0] += 1
    return ddf.map_partitions(_same, run[0], meta=ddf._meta)


def best_rates(jobs: dict, count: int, rounds: int) -> dict[str, tuple[float, object]]:
    """Rows per second of each job (the best of ``rounds`` after a warm-up each) and its last answer. The jobs take
    turns, round after round, so that the machine's changes of pace fall on each of them alike."""
    answers = {name: job() for name, job in jobs.items()}
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(rounds):
        for name, job in jobs.items():
            started = time.perf_counter()
            answers[name] = job()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: (count / best[name], answers[name]) for name in jobs}


def on_dask(client: RegistryClient, estimators: dict, frame: pd.DataFrame, partitions: int, rounds: int,
            cache: str, say, sink: str = "noop") -> list[dict]:
    """Each model on a two-process Dask LocalCluster: the client's predict_dask vs predict / predict_proba
    in map_partitions, each job forced to ``sink`` (:func:`forced_dask`), taking turns; their answers are
    collected once more, untimed, to be compared."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    found = []
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster) as dask:
        ddf = dd.from_pandas(frame, npartitions=partitions).persist()
        run = [0]
        for name, estimator in estimators.items():
            plan = client.plan_batch(name, 1, cache_dir=cache)
            shipped = dask.scatter(estimator, broadcast=True)
            for method in METHODS:
                proba = method == "predict_proba"
                # the scores alone come back (and the version's column), as scikit-learn's do
                kept = ["probability_0", "probability_1"] if proba else ["prediction"]
                if proba:
                    meta = pd.DataFrame({"p0": pd.Series(dtype="float64"), "p1": pd.Series(dtype="float64")})
                else:
                    meta = pd.DataFrame({"p": pd.Series(dtype="int64")})

                def ours_job(proba=proba):
                    return client.predict_dask(fresh(ddf, run), name, plan, proba=proba, keep=[])

                def theirs_job(proba=proba, meta=meta):
                    return fresh(ddf, run).map_partitions(_sklearn_partition, shipped, proba, meta=meta)

                rates = best_rates({"ours": lambda job=ours_job: forced_dask(job(), sink),
                                    "theirs": lambda job=theirs_job: forced_dask(job(), sink)}, len(frame), rounds)
                (ours, _), (theirs, _) = rates["ours"], rates["theirs"]
                scored, answer = ours_job().compute(), theirs_job().compute()
                mine = scored[kept].to_numpy() if proba else scored["prediction"].to_numpy()
                identical = bool(np.array_equal(mine, answer.to_numpy().reshape(mine.shape)))
                found.append(_case("dask", name, method, "predict_dask", ours, theirs, identical, say))
    return found


def _sklearn_partition(frame: pd.DataFrame, estimator, proba: bool) -> pd.DataFrame:
    rows = np.ascontiguousarray(frame.to_numpy())
    if proba:
        return pd.DataFrame(estimator.predict_proba(rows), columns=["p0", "p1"], index=frame.index)
    return pd.DataFrame({"p": estimator.predict(rows)}, index=frame.index)


def forced_dask(ddf, sink: str):
    """Run the Dask job of ``ddf`` whole: with ``noop`` each partition computed and its rows counted on its worker
    (nothing but the counts reaches this process: a scoring job's work without its output's, as Spark's ``noop``
    sink), or with ``collect`` its rows brought into this process, returned."""
    if sink == "collect":
        return ddf.compute()
    ddf.map_partitions(_row_count, meta=(None, "int64")).compute()
    return None


def _row_count(frame: pd.DataFrame) -> int:
    return len(frame)


def forced(df, sink: str):
    """Run the Spark job of ``df`` whole: written to Spark's ``noop`` sink (every row computed, nothing kept: a
    scoring job's work without its output's), or with ``collect`` brought into the driver as pandas, returned."""
    if sink == "collect":
        return df.toPandas()
    df.write.format("noop").mode("overwrite").save()
    return None


def on_spark(client: RegistryClient, estimators: dict, data: Path, count: int, partitions: int, rounds: int,
             cache: str, say, sink: str = "noop", peer: "MlflowPeer | None" = None) -> tuple[list[dict], dict]:
    """Each model on Spark local[2]: the client's spark_udf and predict_spark vs predict / predict_proba inside
    mapInPandas, each job forced to ``sink`` (:func:`forced`), and with ``peer`` MLflow's spark_udf on
    ``predict``, all taking turns; their answers are collected once more, untimed, to be compared.

    Also returns scikit-learn's own ``predict`` of each model in ``row`` order, for MLflow's answers."""
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), str(HERE.parent / "client" / "src"),
                                                             os.environ.get("PYTHONPATH")]))
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH))
             .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    found, by_row = [], {}
    try:
        df = spark.read.parquet(str(data)).repartition(partitions).cache()
        df.count()
        order = df.select("row").toPandas()["row"].to_numpy()  # the cached rows' order, which every job keeps
        for name, estimator in estimators.items():
            plan = client.plan_batch(name, 1, cache_dir=cache)
            shipped = spark.sparkContext.broadcast(estimator)
            for method in METHODS:
                proba = method == "predict_proba"
                column = client.spark_udf(spark, name, plan, proba=proba)
                column = column["probabilities"] if proba else column

                ours_df = df.select(column.alias("p"))
                # the scores alone come back, as scikit-learn's do (with the version's column)
                frame_df = client.predict_spark(df, name, plan, proba=proba, keep=[])
                kept = ["probability_0", "probability_1"] if proba else ["prediction"]

                def by_hand(batches, proba=proba):
                    for batch in batches:
                        features = np.ascontiguousarray(batch[COLUMNS].to_numpy())
                        if proba:
                            p = shipped.value.predict_proba(features)
                            yield pd.DataFrame({"p0": p[:, 0], "p1": p[:, 1]})
                        else:
                            yield pd.DataFrame({"p": shipped.value.predict(features)})

                theirs_df = df.mapInPandas(by_hand, "p0 double, p1 double" if proba else "p long")
                jobs = {"ours": lambda job=ours_df: forced(job, sink),
                        "frame": lambda job=frame_df: forced(job, sink),
                        "theirs": lambda job=theirs_df: forced(job, sink)}
                if peer is not None and not proba:
                    jobs["mlflow"] = lambda name=name: peer.run(name)
                rates = best_rates(jobs, count, rounds)
                (ours, _), (whole, _), (theirs, _) = rates["ours"], rates["frame"], rates["theirs"]
                scored, answer = ours_df.toPandas(), theirs_df.toPandas()
                mine = np.array(scored["p"].tolist())
                identical = bool(np.array_equal(mine, answer.to_numpy().reshape(mine.shape)))  # same rows, in order
                framed = frame_df.toPandas()[kept].to_numpy()
                framed_identical = bool(np.array_equal(framed, answer.to_numpy().reshape(framed.shape)))
                mlflow = rates["mlflow"][0] if "mlflow" in rates else None
                found.append(_case("spark", name, method, "spark_udf", ours, theirs, identical, say, mlflow))
                found.append(_case("spark", name, method, "predict_spark", whole, theirs, framed_identical, say,
                                   mlflow))
                if not proba:
                    by_row[name] = np.empty(count, dtype=answer["p"].dtype)
                    by_row[name][order] = answer["p"].to_numpy()
    finally:
        spark.stop()
    return found, by_row


class MlflowPeer:
    """bench/batch_mlflow.py in MLflow's venv, in a Spark session of its own: a job of MLflow's spark_udf on a
    model each time it is asked (:meth:`run`), taking turns with this process's jobs, and at the end (:meth:`finish`)
    its versions and whether its answers equal scikit-learn's own ``predict``."""

    def __init__(self, python: Path, estimators: dict, data: Path, partitions: int, workdir: Path, sink: str):
        workdir.mkdir(parents=True, exist_ok=True)
        specs = []
        for name, estimator in estimators.items():
            joblib.dump(estimator, workdir / f"{name}.joblib")
            specs += ["--model", f"{name}={workdir / f'{name}.joblib'}"]
        command = [str(python), "-P", str(HERE / "batch_mlflow.py"), "--data", str(data), *specs,
                   "--partitions", str(partitions), "--arrow-batch", str(ARROW_BATCH), "--sink", sink,
                   "--out", str(workdir)]
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYSPARK_PYTHON")}
        env.update(PYSPARK_PYTHON=str(python), MLFLOW_DISABLE_TELEMETRY="true")
        self._log = workdir / "batch_mlflow.log"
        with open(self._log, "wb") as errors:
            self._process = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=errors, text=True)
        self._answer()  # ready: its models saved and its rows cached

    def run(self, model: str) -> None:
        """One job of MLflow's spark_udf on ``model``, returning once it is done (the caller times it)."""
        self._process.stdin.write(f"run {model}\n")
        self._process.stdin.flush()
        self._answer()

    def finish(self, sklearn_by_row: dict) -> dict:
        """The peer's versions and, per model, whether its answers equal scikit-learn's ``predict`` (``row`` order)."""
        self._process.stdin.write("finish\n")
        self._process.stdin.flush()
        found = self._answer()
        self._process.wait()
        for figure in found["figures"]:
            figure["identical"] = bool(np.array_equal(np.load(figure.pop("answers")), sklearn_by_row[figure["model"]]))
        return found

    def stop(self) -> None:
        """Ends the peer, whatever state it is in."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def _answer(self) -> dict:
        for line in self._process.stdout:
            if line.startswith(PEER):
                return json.loads(line[len(PEER):])
        tail = self._log.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"bench/batch_mlflow.py ended ({self._process.wait()}):\n" + "\n".join(tail))


def _case(engine: str, model: str, method: str, via: str, ours: float, theirs: float, identical: bool, say,
          mlflow: float | None = None) -> dict:
    case = {"engine": engine, "model": model, "method": method, "via": via, "registry_rows_per_s": round(ours),
            "sklearn_rows_per_s": round(theirs), "ratio": round(ours / theirs, 2), "identical": identical,
            "mlflow_rows_per_s": None if mlflow is None else round(mlflow),
            "mlflow_ratio": None if mlflow is None else round(ours / mlflow, 2), "mlflow_identical": None}
    say(f"  {engine:<5} {model:<8} {method:<14} {via:<13} registry {ours:12,.0f} rows/s  scikit-learn {theirs:12,.0f} rows/s  "
        f"({case['ratio']:.2f}×, identical: {identical})"
        + ("" if mlflow is None else f"  MLflow spark_udf {mlflow:12,.0f} rows/s ({case['mlflow_ratio']:.2f}×)"))
    return case


def _merge_mlflow(figures: list[dict], mlflow: dict) -> None:
    for measured in mlflow["figures"]:
        for case in figures:
            if (case["engine"], case["model"], case["method"]) == ("spark", measured["model"], "predict"):
                case["mlflow_identical"] = measured["identical"]


def _cell(value, suffix: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,}{suffix}" if isinstance(value, int) and not isinstance(value, bool) else f"{value}{suffix}"


def describe(result: dict) -> str:
    """The figures as Markdown."""
    options, facts = result["options"], result["machine"]
    mlflow = result.get("mlflow")
    peer = (f"MLflow {mlflow['mlflow']} (pyspark {mlflow['pyspark']}, scikit-learn {mlflow['scikit-learn']}, "
            f"models saved by `mlflow.sklearn.save_model` in its default "
            f"{mlflow['figures'][0]['serialization_format']} format), `spark_udf(…, result_type=\"double\", "
            "env_manager=\"local\")` in .venv-mlflow and a Spark session of its own, its jobs taking turns with the "
            "registry's and scikit-learn's"
            if mlflow else "MLflow's spark_udf: not measured (no Spark engine in this run)")
    lines = [f"# Batch scoring, {result['started_at']}", "",
             f"{options['rows']:,} rows in {options['partitions']} partitions of the bench's models; rows per "
             f"second of the whole job, best of {options['rounds']} after a warm-up. Dask: LocalCluster of 2 worker "
             f"processes; Spark: local[2], Arrow batches of {ARROW_BATCH:,} rows, the rows read from one Parquet "
             "file, repartitioned and cached. Each job "
             + ("written to Spark's `noop` sink, or on Dask its partitions' rows counted on the workers (every row "
                "scored, nothing kept)" if options.get("sink", "collect") == "noop"
                else "brought into this process (`toPandas`, `compute`)")
             + ". scikit-learn: the estimator's own `predict` / `predict_proba` in "
             f"`map_partitions` / `mapInPandas`. {peer}. Identical: bit for bit, row by row, against "
             "scikit-learn's own answers.", "",
             f"Command: `{result['command']}`  ",
             f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), load average "
             f"{facts['loadavg_at_start'][0]:.2f} at start, {facts.get('loadavg_at_end', [float('nan')])[0]:.2f} at "
             f"end; Python {facts['python']}, scikit-learn {facts['scikit-learn']}, NumPy {facts['numpy']}, "
             f"commit {facts['git_commit']}", ""]
    goals = _goals(result["figures"])
    if goals:
        lines += ["| goal (issue 46) | at least | measured |", "| --- | --- | --- |", *goals, ""]
    lines += ["| engine | model | method | registry's | registry rows/s | scikit-learn rows/s | MLflow spark_udf rows/s | "
              "registry ÷ scikit-learn | registry ÷ MLflow | registry identical | MLflow identical |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for case in result["figures"]:
        lines.append(f"| {case['engine']} | {case['model']} | {case['method']} | `{case['via']}` | "
                     f"{_cell(case['registry_rows_per_s'])} | "
                     f"{_cell(case['sklearn_rows_per_s'])} | {_cell(case['mlflow_rows_per_s'])} | "
                     f"{_cell(case['ratio'], '×')} | {_cell(case['mlflow_ratio'], '×')} | {case['identical']} | "
                     f"{_cell(case['mlflow_identical'])} |")
    return "\n".join(lines)


def _goals(figures: list[dict]) -> list[str]:
    lines = []
    for engine, model, method, ratio, least in GOALS:
        for case in figures:
            if (case["engine"], case["model"], case["method"]) == (engine, model, method) and case[ratio] is not None:
                against = "MLflow's spark_udf" if ratio == "mlflow_ratio" else "scikit-learn's own"
                lines.append(f"| {engine} {model} `{method}`, `{case['via']}`: registry ÷ {against} | {least}× | "
                             f"{case[ratio]}× |")
    return lines


def main() -> None:
    """Parse the options, measure, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engines", default="dask,spark", help="dask, spark or both (spark includes MLflow)")
    parser.add_argument("--sink", choices=("noop", "collect"), default="noop",
                        help="how a job is forced: Spark's noop sink and Dask's rows counted on the workers, or "
                             "the rows brought into this process (toPandas, compute)")
    parser.add_argument("--mlflow-python", type=Path, default=MLFLOW_PYTHON,
                        help="the interpreter of MLflow's venv, with pyspark (requirements-mlflow.txt)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    args = parser.parse_args()
    engines = args.engines.split(",")
    if "spark" in engines and not args.mlflow_python.is_file():
        parser.error(f"MLflow's venv is not installed at {args.mlflow_python}: make .venv-mlflow/bin/.installed")
    result = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "command": " ".join([Path(sys.executable).name, "-m", "bench.batch", *sys.argv[1:]]),
              "options": {"rows": args.rows, "partitions": args.partitions, "rounds": args.rounds,
                          "arrow_batch": ARROW_BATCH, "sink": args.sink},
              "machine": report.machine_facts(), "figures": []}
    estimators = models.fit_models()
    frame = rows(args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        data = root / "rows.parquet"
        frame.assign(row=np.arange(len(frame), dtype="int64"))[["row", *COLUMNS]].to_parquet(data, index=False)
        with server.running(f"sqlite:///{root}/registry.db", root, TOKEN) as (live,):
            client = RegistryClient(live.url, TOKEN)
            for name, estimator in estimators.items():
                client.upload(name, estimator)
            for engine in engines:
                if engine == "dask":
                    result["figures"] += on_dask(client, estimators, frame, args.partitions, args.rounds,
                                                 str(root / "cache"), print, args.sink)
                elif engine == "spark":
                    peer = MlflowPeer(args.mlflow_python, estimators, data, args.partitions, root / "mlflow", args.sink)
                    try:
                        found, by_row = on_spark(client, estimators, data, len(frame), args.partitions, args.rounds,
                                                 str(root / "cache"), print, args.sink, peer)
                        result["mlflow"] = peer.finish(by_row)
                    finally:
                        peer.stop()
                    result["figures"] += found
                    _merge_mlflow(result["figures"], result["mlflow"])
                    for figure in result["mlflow"]["figures"]:
                        print(f"  spark {figure['model']:<8} MLflow's answers identical to scikit-learn's: "
                              f"{figure['identical']}")
                else:
                    parser.error(f"unknown engine {engine!r}: dask or spark")
    result["machine"]["loadavg_at_end"] = list(os.getloadavg())
    text = describe(result)
    print(text)
    report.save("batch", result, text, args.out, latest="batch")


if __name__ == "__main__":
    main()
