"""The prediction log bounded by bytes, over time: every answer logged, one hot model flooded and one
quiet model asked once a second, the database's size sampled as it goes.

The registry (2 workers under gunicorn) logs every answer (``PREDICTION_LOG_SAMPLE=1``) within
``PREDICTION_LOG_MAX_MB=--max-mb``; wrk sends the 100-row body to ``hot`` for ``--minutes`` while
``quiet`` gets one request a second. Every ``--sample-seconds`` it notes what /metrics says the log
holds per model, the rows pruned, and the database's size: on SQLite the file and its WAL; on
PostgreSQL (``--postgresql``, a throwaway database on the local server) the table with its indexes
and TOAST, and its dead tuples. Prints the samples and writes them to bench/results/.

    .venv/bin/python -m bench.log_bound                    # SQLite, 3 minutes, 8 MB
    .venv/bin/python -m bench.log_bound --postgresql

Figures only; nothing passes or fails.
"""
import argparse
import os
import tempfile
import threading
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from bench import loadgen, models, report
from bench.harness import server as e2e
from bench.harness.databases import postgres_database
from bench.harness.traffic import move
from bench.servers import ADMIN_TOKEN, REFRESH_SECONDS, WORKERS

HERE = Path(__file__).resolve().parent
MB = 1024 * 1024


def main() -> None:
    """Parse the options, flood, sample, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--max-mb", type=float, default=8.0)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--postgresql", action="store_true", help="a throwaway database on the local PostgreSQL")
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts()}
    with tempfile.TemporaryDirectory(prefix="bench-log-bound-") as tmp, \
            (postgres_database(durable=False) if args.postgresql else nullcontext(None)) as postgres:
        root = Path(tmp)
        url = postgres or f"sqlite:///{root}/registry.db"
        env = e2e.service_env(url, root / "artifacts", ADMIN_TOKEN, PREDICTION_LOG_SAMPLE=1.0,
                              PREDICTION_LOG_MAX_MB=args.max_mb)
        e2e.migrate(env)
        live = e2e.start(env, root, workers=WORKERS, refresh_seconds=REFRESH_SECONDS)
        try:
            for name in ("hot", "quiet"):
                move(live, "promote", name, models.register(live, name, models.fit("logistic")))
            run["samples"] = flood(live, url, models.write_bodies(root)[100], args)
        finally:
            live.stop()
    text_out = describe(run)
    print(text_out)
    report.save("log-bound", run, text_out, HERE / "results", latest=f"log-bound-{'postgresql' if args.postgresql else 'sqlite'}")


def flood(live, url: str, body: Path, args) -> list[dict]:
    """wrk on ``hot`` for the whole run, a request a second to ``quiet``, a sample every ``sample_seconds``."""
    engine = create_engine(url)
    quiet_body = body.read_text()
    samples, stop = [], threading.Event()
    load = loadgen.Background(f"{live.url}/models/hot/production/predict", body, args.connections)
    started = time.monotonic()
    try:
        next_sample = started
        while time.monotonic() - started < args.minutes * 60:
            requests.post(f"{live.url}/models/quiet/production/predict", data=quiet_body,
                          headers={"Content-Type": "application/json"}, timeout=30)
            if time.monotonic() >= next_sample:
                samples.append({"seconds": round(time.monotonic() - started), **measure(live, engine, url)})
                print(samples[-1], flush=True)
                next_sample += args.sample_seconds
            stop.wait(1.0)
    finally:
        result = load.stop()
    samples.append({"seconds": round(time.monotonic() - started), **measure(live, engine, url),
                    "hot_requests": result.requests, "hot_p99_ms": result.p99_ms})
    engine.dispose()
    return samples


def measure(live, engine, url: str) -> dict:
    """What /metrics says the log holds, and what the database takes on disk now."""
    found = {"bytes": {}, "rows": {}, "pruned": 0.0}
    for family in text_string_to_metric_families(requests.get(f"{live.url}/metrics", timeout=30).text):
        for sample in family.samples:
            if sample.name == "registry_prediction_log_bytes":
                found["bytes"][sample.labels["model"]] = sample.value
            elif sample.name == "registry_prediction_log_rows":
                found["rows"][sample.labels["model"]] = sample.value
            elif sample.name == "registry_prediction_log_pruned_total" and sample.labels.get("reason") == "bytes":
                found["pruned"] = sample.value
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        found["database_bytes"] = sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))
    else:
        with engine.connect() as connection:
            found["database_bytes"] = connection.execute(text("SELECT pg_total_relation_size('prediction_log')")).scalar()
            found["dead_tuples"] = connection.execute(text(
                "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'prediction_log'")).scalar()
    return found


def describe(run: dict) -> str:
    """The samples as Markdown."""
    o = run["options"]
    backend = "PostgreSQL (prediction_log with its indexes and TOAST)" if o["postgresql"] else "SQLite (file + WAL)"
    last = run["samples"][-1]
    lines = [
        f"# The prediction log within PREDICTION_LOG_MAX_MB={o['max_mb']:g}, {run['started_at']}", "",
        f"{backend}; every answer logged; wrk c={o['connections']} on `hot` (100-row body), one request a second "
        f"on `quiet`; {o['minutes']:g} minutes; {WORKERS} workers.", "",
        "| s | hot MB (rows) | quiet MB (rows) | pruned rows | database MB | dead tuples |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in run["samples"]:
        def model(name):
            return f"{s['bytes'].get(name, 0) / MB:.2f} ({s['rows'].get(name, 0):.0f})"
        lines.append(f"| {s['seconds']} | {model('hot')} | {model('quiet')} | {s['pruned']:.0f} | "
                     f"{s['database_bytes'] / MB:.1f} | {s.get('dead_tuples', '')} |")
    lines += ["", f"- hot: {last['hot_requests']} requests, p99 {last['hot_p99_ms']:.1f} ms"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
