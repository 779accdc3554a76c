"""Where a batch partition's time goes: the client's per-partition scoring vs scikit-learn's own, in process.

``python -m bench.profile_batch [--rows 250000] [--top 0]``

Scores one pandas partition of ``--rows`` rows like the bench models' training rows with the logistic
regression and the 100-tree forest (bench/models.py), ``predict`` and ``predict_proba``, through what
Dask's ``map_partitions`` calls (the frame with its scores beside it) and what the Spark UDF does with one Arrow
batch of the same rows (its feature arrays scored, its scores made Arrow arrays), beside
the estimator's own method on the same rows. No engine, no server: the version is loaded by the
registry's restricted loader into the client's per-process cache, as an executor loads it. Figures are
CPU time (the best of three), so they hardly move with the machine's load; ``--top N`` also prints
cProfile's N costliest calls of each case.
"""
import argparse
import cProfile
import hashlib
import io
import os
import pstats
import time

import joblib
import numpy as np
import pyarrow as pa

from bench import models
from bench.batch import rows
from registry.facts import VersionInfo
from registry.serving.offline import load_version
from registry_client import batch
from registry_client.batch import Plan
from registry_client.engines import _arrow_scores, _scored_partition


def loaded_plan(name: str, estimator) -> Plan:
    """A plan of ``estimator`` with its version already loaded in this process (no download)."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    data = buffer.getvalue()
    sha256 = hashlib.sha256(data).hexdigest()
    signature = {"features": [{"name": f"x{i}", "dtype": "float64"} for i in range(models.FEATURES)],
                 "classes": [int(c) for c in estimator.classes_]}
    info = VersionInfo(name, 1, sha256, "classification", signature, kind="sklearn")
    batch._LOADED[sha256] = load_version(data, info, max_model_bytes=1 << 30)
    return Plan(url="http://unused", token=None, model=name, version=1, alias=None, sha256=sha256,
                size_bytes=len(data), task="classification", kind="sklearn", signature=signature)


def spark_batch(job: Plan, arrays: tuple, proba: bool):
    """What the Spark UDF (engines.spark_column's Arrow UDF) yields for one Arrow batch of the features."""
    return list(_arrow_scores(job, proba, False)(iter([arrays])))


def cpu_seconds(job) -> float:
    """The least CPU time of three calls of ``job()``, after one warm-up."""
    job()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        job()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()
    frame = rows(args.rows)
    matrix = np.ascontiguousarray(frame.to_numpy())
    arrays = tuple(pa.array(frame[name].to_numpy()) for name in frame.columns)
    print(f"{args.rows:,} rows, load average {os.getloadavg()[0]:.2f}; CPU ms of one partition (best of 3)")
    print(f"{'model':9}{'method':15}{'dask':>9}{'spark':>9}{'sklearn':>9}")
    for name, estimator in models.fit_models().items():
        job = loaded_plan(name, estimator)
        for method in ("predict", "predict_proba"):
            proba = method == "predict_proba"
            cases = {"dask": lambda: _scored_partition(frame, job, proba, False, None),
                     "spark": lambda: spark_batch(job, arrays, proba),
                     "sklearn": lambda: getattr(estimator, method)(matrix)}
            spent = {case: cpu_seconds(call) * 1000 for case, call in cases.items()}
            print(f"{name:9}{method:15}" + "".join(f"{ms:9.1f}" for ms in spent.values()))
            if args.top:
                profile = cProfile.Profile()
                profile.runcall(lambda: [cases["dask"](), cases["spark"]()])
                pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
