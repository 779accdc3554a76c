"""The fleet's figures: a new replica's start with an empty node cache against a warm one, and the
upload of a large artifact to S3 (throughput, and what the uploading worker's memory peaked at).

Replicas share only PostgreSQL and a SeaweedFS S3 server (bench/harness/fleet.py), each in a network
namespace of its own where this runs as root.

- ``start``: ``--models`` models are promoted (each ~``--model-mb`` MB); a new replica is started and
  timed from launch to the first correct answer of every model's ``production`` alias, with an empty
  node cache, then again on the cache it filled. Repeated ``--starts`` times each.
- ``upload``: a ``--upload-mb`` MB forest (copies of one deep tree, made once and kept under
  bench/results/) is uploaded through one replica; the worker's peak RSS (VmHWM) over the upload,
  and its throughput from the request's start to the version's row.

    .venv/bin/python -m bench.fleet                      # both
    .venv/bin/python -m bench.fleet --figure upload --upload-mb 300

Figures only; nothing passes or fails on them.
"""
import argparse
import copy
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import joblib
import numpy as np
import psutil
import requests
from sklearn.ensemble import RandomForestRegressor
from sklearn.tree import DecisionTreeRegressor

from bench import report
from bench.harness import fleet as fleets
from bench.harness import s3_server, server
from bench.harness.databases import postgres_database
from bench.harness.models import artifact_bytes

HERE = Path(__file__).resolve().parent
TOKEN = "bench-fleet-token"
MB = 2**20


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", choices=["start", "upload", "both"], default="both")
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--model-mb", type=float, default=8.0)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--upload-mb", type=int, default=300)
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": report.machine_facts(),
           "options": vars(args)}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, s3_server.running(Path(tmp) / "s3") as s3, \
            postgres_database() as url, fleets.running(url, s3, Path(tmp), TOKEN, count=1) as fleet:
        if args.figure in ("start", "both"):
            run["start"] = measure_start(fleet, args)
        if args.figure in ("upload", "both"):
            run["upload"] = measure_upload(fleet, args)
    text = describe(run)
    print(text)
    report.save("fleet", run, text, HERE / "results", latest="fleet")


def forest(megabytes: float, seed: int = 0) -> RandomForestRegressor:
    """A forest of copies of one deep tree, about ``megabytes`` on disk: large, valid, quick to make."""
    rng = np.random.default_rng(seed)
    rows = 20_000
    tree = DecisionTreeRegressor(random_state=seed).fit(rng.random((rows, 3)), rng.random(rows))
    per_tree = len(artifact_bytes(tree)) / MB
    model = RandomForestRegressor(n_estimators=2, random_state=seed).fit(rng.random((10, 3)), rng.random(10))
    model.estimators_ = [copy.deepcopy(tree) for _ in range(max(1, round(megabytes / per_tree)))]
    model.n_estimators = len(model.estimators_)
    return model


def measure_start(fleet, args) -> dict:
    """Seconds from launching a replica to every production alias answering, cold and warm cache."""
    first = fleet.replicas[0]
    expected = {}
    for i in range(args.models):
        model = forest(args.model_mb, seed=i)
        uploaded = requests.post(f"{first.live.url}/models/m{i}/versions", headers=first.live.headers, timeout=300,
                                 files={"artifact": ("m.joblib", artifact_bytes(model))})
        uploaded.raise_for_status()
        requests.post(f"{first.live.url}/models/m{i}/versions/1/promote", json={}, headers=first.live.headers,
                      timeout=300).raise_for_status()
        expected[f"m{i}"] = float(model.predict([[0.5, 0.5, 0.5]])[0])
    cold, warm = [], []
    for _ in range(args.starts):
        replica = fleet.add(wait=False)
        cold.append(_until_every_alias_answers(replica, expected))
        server.stop_all([replica.live])
        fleet.replicas.remove(replica)
        again = fleet.add(wait=False, root=replica.root)
        warm.append(_until_every_alias_answers(again, expected))
        server.stop_all([again.live])
        fleet.replicas.remove(again)
    return {"models": args.models, "artifact_mb": args.model_mb, "cold_seconds": cold, "warm_seconds": warm}


def _until_every_alias_answers(replica, expected: dict) -> float:
    started = time.monotonic()
    left = dict(expected)
    while left:
        for name, value in list(left.items()):
            try:
                answer = requests.post(f"{replica.live.url}/models/{name}/production/predict",
                                       json={"instances": [[0.5, 0.5, 0.5]]}, timeout=60)
            except requests.ConnectionError:
                time.sleep(0.05)
                break
            if answer.status_code == 200 and answer.json()["predictions"][0] == value:
                del left[name]
        if time.monotonic() - started > 600:
            raise RuntimeError(f"{replica.live.url} did not answer {sorted(left)} in 10 minutes")
    return time.monotonic() - started


def measure_upload(fleet, args) -> dict:
    """Throughput of one large upload through a replica, and the peak RSS of the worker that took it."""
    path = HERE / "results" / f".forest-{args.upload_mb}mb.joblib"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(forest(args.upload_mb), path)
    size = path.stat().st_size
    replica = fleet.replicas[0]
    workers = psutil.Process(replica.live.process.pid).children()
    before = {w.pid: _peak_rss(w.pid) for w in workers}
    started = time.monotonic()
    with open(path, "rb") as f:
        answer = requests.post(f"{replica.live.url}/models/big/versions", headers=replica.live.headers, timeout=1800,
                               files={"artifact": ("big.joblib", f)})
    seconds = time.monotonic() - started
    answer.raise_for_status()
    grew = {pid: _peak_rss(pid) - rss for pid, rss in before.items()}
    worker = max(grew, key=grew.get)
    return {"artifact_mb": size / MB, "seconds": seconds, "mb_per_second": size / MB / seconds,
            "worker_peak_rss_before_mb": before[worker] / 1024, "worker_peak_rss_growth_mb": grew[worker] / 1024}


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


def _start_row(cache: str, seconds: list[float]) -> str:
    return f"| {cache} | {statistics.median(seconds):.1f} s | {', '.join(f'{x:.1f}' for x in seconds)} |"


def describe(run: dict) -> str:
    """The figures as Markdown."""
    lines = [f"# Fleet figures, {run['started_at']}", ""]
    if "start" in run:
        s = run["start"]
        lines += [
            f"A new replica (2 workers) until all {s['models']} production aliases (~{s['artifact_mb']:g} MB each) "
            "answer correctly:", "",
            "| node cache | median | runs |", "| --- | --- | --- |",
            _start_row("empty", s["cold_seconds"]),
            _start_row("warm", s["warm_seconds"]),
            "",
        ]
    if "upload" in run:
        u = run["upload"]
        lines += [
            f"Upload of a {u['artifact_mb']:.0f} MB artifact to S3 through one replica: {u['seconds']:.1f} s "
            f"({u['mb_per_second']:.1f} MB/s, request start to version row); the worker's peak RSS grew by "
            f"{u['worker_peak_rss_growth_mb']:.0f} MB (from {u['worker_peak_rss_before_mb']:.0f} MB).",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
