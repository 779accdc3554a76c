"""Batch scoring on real engines: the registry's client vs scikit-learn's own predict, on the same cluster.

``python -m bench.batch`` starts a registry (gunicorn, SQLite), registers the bench's logistic regression
and 100-tree random forest (bench/models.py), and scores ``--rows`` rows (default 2,000,000, in
``--partitions`` partitions) with each, on a Dask LocalCluster of two worker processes and on Spark
``local[2]``: the client's ``predict_dask`` / ``spark_udf`` (the artifact fetched once per machine,
loaded by the registry's restricted loader, rows checked against the signature, compiled predictor)
against the unpickled estimator's ``predict_proba`` inside ``map_partitions`` / a ``mapInPandas``
(what a team writes by hand, with no checks). Rows per second of the whole job, the best of
``--rounds`` runs after one warm-up, and whether the answers are identical bit for bit. MLflow's
``spark_udf`` is not measured: MLflow lives in a virtualenv of its own (.venv-mlflow) without Spark.
Writes ``bench/results/batch-<UTC time>.*``. Figures only, never pass or fail.
"""
import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench import models, report
from bench.harness import server
from registry_client import RegistryClient

HERE = Path(__file__).resolve().parent
TOKEN = "bench-batch-token"
COLUMNS = [f"x{i}" for i in range(models.FEATURES)]


def rows(count: int) -> pd.DataFrame:
    """``count`` rows like the bench models' training rows."""
    X, _ = models.training_data()
    grown = np.resize(X, (count, X.shape[1])) + np.random.default_rng(0).normal(scale=0.01, size=(count, X.shape[1]))
    return pd.DataFrame(grown, columns=COLUMNS)


def best_rate(job, count: int, rounds: int) -> tuple[float, object]:
    """Rows per second of ``job()`` (the best of ``rounds`` after a warm-up), and its last answer."""
    answer = job()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        answer = job()
        best = min(best, time.perf_counter() - started)
    return count / best, answer


def on_dask(client: RegistryClient, estimators: dict, frame: pd.DataFrame, partitions: int, rounds: int,
            cache: str, say) -> list[dict]:
    """Each model on a two-process Dask LocalCluster: the client's predict_dask vs predict_proba in map_partitions."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    found = []
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, Client(cluster) as dask:
        ddf = dd.from_pandas(frame, npartitions=partitions).persist()
        for name, estimator in estimators.items():
            plan = client.plan_batch(name, 1, cache_dir=cache)
            ours, scored = best_rate(lambda: client.predict_dask(ddf, name, plan, proba=True).compute(), len(frame),
                                     rounds)
            shipped = dask.scatter(estimator, broadcast=True)
            meta = pd.DataFrame({"p0": pd.Series(dtype="float64"), "p1": pd.Series(dtype="float64")})

            def theirs_job():
                return ddf.map_partitions(_sklearn_partition, shipped, meta=meta).compute()

            theirs, answer = best_rate(theirs_job, len(frame), rounds)
            identical = bool(np.array_equal(scored[["probability_0", "probability_1"]].to_numpy(), answer.to_numpy()))
            found.append(_case("dask", name, ours, theirs, identical, say))
    return found


def _sklearn_partition(frame: pd.DataFrame, estimator) -> pd.DataFrame:
    rows = np.ascontiguousarray(frame.to_numpy())
    return pd.DataFrame(estimator.predict_proba(rows), columns=["p0", "p1"], index=frame.index)


def on_spark(client: RegistryClient, estimators: dict, frame: pd.DataFrame, partitions: int, rounds: int,
             cache: str, say) -> list[dict]:
    """Each model on Spark local[2]: the client's spark_udf vs predict_proba inside mapInPandas."""
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), str(HERE.parent / "client" / "src"),
                                                             os.environ.get("PYTHONPATH")]))
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", "100000").getOrCreate())
    found = []
    try:
        df = spark.createDataFrame(frame).repartition(partitions).cache()
        df.count()
        for name, estimator in estimators.items():
            plan = client.plan_batch(name, 1, cache_dir=cache)
            column = client.spark_udf(spark, name, plan, proba=True)

            def ours_job():
                return df.select(column["probabilities"].alias("p")).toPandas()

            ours, scored = best_rate(ours_job, len(frame), rounds)
            shipped = spark.sparkContext.broadcast(estimator)

            def by_hand(batches):
                for batch in batches:
                    p = shipped.value.predict_proba(np.ascontiguousarray(batch[COLUMNS].to_numpy()))
                    yield pd.DataFrame({"p0": p[:, 0], "p1": p[:, 1]})

            theirs, answer = best_rate(lambda: df.mapInPandas(by_hand, "p0 double, p1 double").toPandas(),
                                       len(frame), rounds)
            identical = bool(np.array_equal(np.array(scored["p"].tolist()), answer.to_numpy()))  # the same rows, in order
            found.append(_case("spark", name, ours, theirs, identical, say))
    finally:
        spark.stop()
    return found


def _case(engine: str, model: str, ours: float, theirs: float, identical: bool, say) -> dict:
    case = {"engine": engine, "model": model, "registry_rows_per_s": round(ours), "sklearn_rows_per_s": round(theirs),
            "ratio": round(ours / theirs, 2), "identical": identical}
    say(f"  {engine:<5} {model:<8} registry {ours:12,.0f} rows/s  scikit-learn {theirs:12,.0f} rows/s  "
        f"({case['ratio']:.2f}×, identical: {identical})")
    return case


def describe(result: dict) -> str:
    """The figures as Markdown."""
    options = result["options"]
    lines = [f"# Batch scoring, {result['started_at']}", "",
             f"{options['rows']:,} rows in {options['partitions']} partitions, `predict_proba` of the bench's models; "
             f"rows per second of the whole job, best of {options['rounds']} after a warm-up. Dask: LocalCluster of "
             "2 worker processes; Spark: local[2]. MLflow's spark_udf: not measured (no Spark in .venv-mlflow).", "",
             "| engine | model | registry rows/s | scikit-learn rows/s | registry ÷ scikit-learn | identical |",
             "| --- | --- | --- | --- | --- | --- |"]
    for case in result["figures"]:
        lines.append(f"| {case['engine']} | {case['model']} | {case['registry_rows_per_s']:,} | "
                     f"{case['sklearn_rows_per_s']:,} | {case['ratio']}× | {case['identical']} |")
    return "\n".join(lines)


def main() -> None:
    """Parse the options, measure, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engines", default="dask,spark", help="dask, spark or both")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    args = parser.parse_args()
    result = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "options": {"rows": args.rows, "partitions": args.partitions, "rounds": args.rounds},
              "machine": report.machine_facts(), "figures": []}
    estimators = models.fit_models()
    frame = rows(args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        with server.running(f"sqlite:///{root}/registry.db", root, TOKEN) as (live,):
            client = RegistryClient(live.url, TOKEN)
            for name, estimator in estimators.items():
                client.upload(name, estimator)
            for engine in args.engines.split(","):
                run = {"dask": on_dask, "spark": on_spark}[engine]
                result["figures"] += run(client, estimators, frame, args.partitions, args.rounds, str(root / "cache"),
                                         print)
    text = describe(result)
    print(text)
    report.save("batch", result, text, args.out, latest="batch")


if __name__ == "__main__":
    main()
