"""Uploading a 500-tree boosted model to a real gunicorn: the upload's time and the peak memory of the
worker that read it, then its first prediction (the version loaded and compiled) likewise, per format.

    .venv/bin/python -m bench.boosted_upload                 # 500 trees of depth 6, 20 features
    .venv/bin/python -m bench.boosted_upload --trees 2000

The formats: scikit-learn's HistGradientBoostingClassifier (joblib, through the restricted unpickler),
XGBoost's JSON and UBJSON files and LightGBM's text file (read by the registry's own parsers; XGBoost and
LightGBM are needed here only to make the files). Each upload is a new model on one server (2 workers,
fresh SQLite). Figures, never pass/fail; on a shared machine times are noisy. Writes
bench/results/boosted-upload-<time>.json and .md.
"""
from __future__ import annotations

import argparse
import io
import os
import shlex
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import joblib
import numpy as np
import requests
from sklearn.ensemble import HistGradientBoostingClassifier

from bench import report
from bench.harness import uploads
from bench.harness.checkout import commit_of, stop_checkout

HERE = Path(__file__).resolve().parent
FEATURES = 20
DEPTH = 6


def files(trees: int) -> dict[str, tuple[str, bytes]]:
    """(file name, bytes) of a ``trees``-tree binary classifier in every format, trained on the same rows."""
    import lightgbm
    import xgboost

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, FEATURES))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    hgb = HistGradientBoostingClassifier(max_iter=trees, max_depth=DEPTH, early_stopping=False, random_state=0).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(hgb, buffer)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": DEPTH, "seed": 0}, xgboost.DMatrix(X, y), trees)
    lgbm = lightgbm.train({"objective": "binary", "num_leaves": 2 ** DEPTH, "max_depth": DEPTH, "verbose": -1},
                          lightgbm.Dataset(X, y), trees)
    return {
        "scikit-learn HistGradientBoosting (joblib)": ("model.joblib", buffer.getvalue()),
        "XGBoost JSON": ("model.json", bytes(booster.save_raw("json"))),
        "XGBoost UBJSON": ("model.ubj", bytes(booster.save_raw("ubj"))),
        "LightGBM text": ("model.txt", lgbm.model_to_string().encode()),
    }


def main() -> None:
    """Start the server, upload each file and predict with it once, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout to run the server from")
    parser.add_argument("--trees", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    made = files(args.trees)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-boosted-upload-") as root:
        process, url = uploads.start_server(repo, Path(root), workers=args.workers, settings={})
        try:
            for number, (kind, (filename, data)) in enumerate(made.items()):
                name = f"boosted-{number}"
                row = uploads.measure_upload(process, url, name, data, filename) | {"format": kind}
                body = {"instances": [[0.1] * FEATURES]}
                answer, seconds, peak, before, _ = uploads.measured(
                    process, lambda: requests.post(f"{url}/models/{name}/1/predict", json=body, timeout=600))
                row |= {"first_predict_status": answer.status_code, "first_predict_seconds": round(seconds, 2),
                        "first_predict_peak_rss_mb": peak, "first_predict_rss_before_mb": before}
                rows.append(row)
        finally:
            stop_checkout(process)
    run = {
        "command": shlex.join([sys.executable, "-m", "bench.boosted_upload", *sys.argv[1:]]),
        "started_at": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
        "repo": str(repo), "commit": commit_of(repo), "trees": args.trees, "depth": DEPTH, "features": FEATURES,
        "loadavg": list(os.getloadavg()), "rows": rows,
    }
    lines = [
        f"# A {args.trees}-tree boosted model uploaded, {run['started_at']}", "",
        f"Command: `{run['command']}`  ", f"Server: {repo} at {run['commit']}, {args.workers} workers; trees of depth "
        f"≤ {DEPTH} over {FEATURES} features; load average at end {', '.join(f'{x:.2f}' for x in run['loadavg'])} "
        "(shared machine: times are noisy)", "",
        "| format | file MB | upload status | upload s | upload peak RSS MB (before) | first predict s "
        "| first predict peak RSS MB (before) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {r['format']} | {r['upload_mb']} | {r['status']} | {r['seconds']} | {r['worker_peak_rss_mb']} "
          f"({r['worker_rss_before_mb']}) | {r['first_predict_seconds']} | {r['first_predict_peak_rss_mb']} "
          f"({r['first_predict_rss_before_mb']}) |" for r in rows],
    ]
    text = "\n".join(lines)
    print(text)
    report.save("boosted-upload", run, text, HERE / "results")


if __name__ == "__main__":
    main()
