"""MLflow's ``spark_udf`` on Spark local[2]: the peer bench/batch.py measures, run in MLflow's own venv.

Not a module of the service's venv: bench/batch.py runs it as a subprocess with the MLflow venv's
interpreter (.venv-mlflow, requirements-mlflow.txt, which holds pyspark at requirements-dev.txt's pin)::

    .venv-mlflow/bin/python -P bench/batch_mlflow.py --data rows.parquet --model forest=forest.joblib \
        --partitions 8 --arrow-batch 100000 --sink noop --out DIR

Each ``--model NAME=FILE`` is a scikit-learn estimator in a joblib file (the same scikit-learn, NumPy and
joblib pins as the service's venv). It is saved with ``mlflow.sklearn.save_model`` into ``DIR/NAME``
(MLflow's defaults: skops format, here trusting the trees' ``sklearn.tree._tree.Tree``; a signature
inferred from an input example; no tracking server), and scored with
``mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double", env_manager="local")`` over the rows of
``--data`` (a Parquet file: a ``row`` number and the feature columns), read, repartitioned into
``--partitions`` and cached exactly as bench/batch.py's own Spark run reads them. A job is
``df.select(udf(*features))`` forced as the registry's run is (``--sink``: written to Spark's ``noop`` sink,
or ``collect``: ``toPandas``).

It takes turns with bench/batch.py's own jobs, in its own Spark session beside the registry's, so that the
machine's changes of pace fall on every job alike. Its protocol is lines, the ones it writes to stdout marked
``@peer``: it writes ``@peer {"ready": [NAME, ...]}`` when its models are saved and its rows cached; then
each ``run NAME`` read from stdin runs that model's job once (``@peer {"ran": NAME}``: bench/batch.py times it),
and ``finish`` collects each model's answers once more, untimed, into ``DIR/NAME.npy`` in ``row`` order (for
bench/batch.py to compare with scikit-learn's own ``predict``), writes ``@peer`` and a JSON object
(versions and, per model, the answers' file), stops Spark and ends. Imports nothing from the repository.
"""
import argparse
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np

# The one type skops does not trust by default that the bench's forest holds (its trees' node storage);
# tests/e2e/mlflow_peer/log_models.py trusts the same for its forests.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def forced(df, sink: str) -> None:
    """Run the job of ``df`` whole, as bench/batch.py's ``forced`` does: to the ``noop`` sink, or into the driver."""
    if sink == "collect":
        df.toPandas()
    else:
        df.write.format("noop").mode("overwrite").save()


PEER = "@peer "


def say(message: dict) -> None:
    """One protocol line to bench/batch.py."""
    print(PEER + json.dumps(message), flush=True)


def main() -> None:
    """Save each model with MLflow, then score the rows with spark_udf whenever bench/batch.py asks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Parquet file: row, then the features")
    parser.add_argument("--model", action="append", required=True, help="NAME=JOBLIB_FILE, repeatable")
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--arrow-batch", type=int, required=True, help="spark.sql.execution.arrow.maxRecordsPerBatch")
    parser.add_argument("--out", type=Path, required=True, help="directory for the saved models and the answers")
    parser.add_argument("--sink", choices=("noop", "collect"), default="noop",
                        help="how each job is forced: Spark's noop sink, or toPandas into the driver")
    args = parser.parse_args()
    out = args.out.resolve()

    import mlflow
    import mlflow.sklearn
    from mlflow.models import Model
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.arrow_batch))
             .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    found = {"mlflow": mlflow.__version__, "pyspark": version("pyspark"), "scikit-learn": version("scikit-learn"),
             "numpy": version("numpy"), "python": sys.version.split()[0], "figures": []}
    try:
        df = spark.read.parquet(str(args.data.resolve())).repartition(args.partitions).cache()
        count = df.count()
        features = [name for name in df.columns if name != "row"]
        order = df.select("row").toPandas()["row"].to_numpy()  # the cached rows' order, which every job keeps
        example = df.select(*features).limit(3).toPandas()
        jobs = {}
        for spec in args.model:
            name, _, file = spec.partition("=")
            saved = out / name
            mlflow.sklearn.save_model(joblib.load(file), str(saved), input_example=example,
                                      skops_trusted_types=SKOPS_TRUSTED_TYPES)
            udf = mlflow.pyfunc.spark_udf(spark, saved.as_uri(), result_type="double", env_manager="local")
            jobs[name] = (saved, df.select(udf(*features).alias("p")))
        say({"ready": list(jobs)})
        for line in sys.stdin:
            command, _, name = line.strip().partition(" ")
            if command == "run":
                forced(jobs[name][1], args.sink)
                say({"ran": name})
            elif command == "finish":
                break
        for name, (saved, scored) in jobs.items():
            by_row = np.empty(count)
            by_row[order] = scored.toPandas()["p"].to_numpy()  # once more, untimed, to be compared
            np.save(out / f"{name}.npy", by_row)
            fmt = Model.load(str(saved)).flavors["sklearn"].get("serialization_format")
            found["figures"].append({"model": name, "rows": count, "serialization_format": fmt,
                                     "answers": str(out / f"{name}.npy")})
    finally:
        spark.stop()
    say(found)


if __name__ == "__main__":
    main()
