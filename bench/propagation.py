"""Propagation: how long after a promote returns another replica answers with the new version.

Two replicas (two workers each) share one database and one artifact root. ``--moves`` promotes
alternate between two versions through the first replica; after each, the second replica is asked
on fresh connections until ``--run`` answers in a row name the new version (so both of its workers
have it). The staleness of a move is the time from the promote returning to the first of those
answers. On PostgreSQL a move is announced with NOTIFY; ``--database sqlite`` shows the poll alone.

    .venv/bin/python -m bench.propagation                       # PostgreSQL (NOTIFY), 1 s poll
    .venv/bin/python -m bench.propagation --database sqlite     # polling only

Figures only; nothing passes or fails on them.
"""
import argparse
import contextlib
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

from bench import report
from bench.harness import server
from bench.harness.databases import postgres_database
from bench.harness.models import PROBE_ROW, scaled_sum, upload

HERE = Path(__file__).resolve().parent
TOKEN = "bench-propagation-token"
GOAL_P99_MS = 50.0


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--moves", type=int, default=50)
    parser.add_argument("--run", type=int, default=6, help="answers in a row that must name the new version")
    parser.add_argument("--refresh-seconds", type=float, default=1.0, help="ALIAS_REFRESH_SECONDS (the poll)")
    args = parser.parse_args()
    run = {
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "database": args.database, "moves": args.moves, "run": args.run, "refresh_seconds": args.refresh_seconds,
        "machine": report.machine_facts(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-propagation-") as tmp:
        run["staleness_ms"] = measure(Path(tmp), args)
    text = describe(run)
    print(text)
    report.save("propagation", run, text, HERE / "results", latest=f"propagation-{args.database}")


def measure(root: Path, args) -> list[float]:
    """Each move's staleness on the second replica, in milliseconds."""
    database = postgres_database() if args.database == "postgresql" else contextlib.nullcontext(f"sqlite:///{root}/registry.db")
    with database as url, server.running(url, root, TOKEN, count=2, workers=2, refresh_seconds=args.refresh_seconds) as (first, second):
        for factor in (1, 2):
            upload(first, "p", scaled_sum(factor)).raise_for_status()
        _promote(first, 1)
        _staleness(second, 1, args.run)
        return [_promote_and_wait(first, second, 2 if move % 2 == 0 else 1, args.run) for move in range(args.moves)]


def describe(run: dict) -> str:
    """The figures as Markdown."""
    took = sorted(run["staleness_ms"])
    p99 = took[min(len(took) - 1, round(0.99 * (len(took) - 1)))]
    how = "NOTIFY, and the poll" if run["database"] == "postgresql" else "the poll alone"
    return "\n".join([
        f"# Propagation of a promote to another replica ({run['database']}: {how})",
        "",
        f"{run['moves']} promotes through one replica; the other (2 workers) answered {run['run']} times in a row "
        f"with the new version; ALIAS_REFRESH_SECONDS={run['refresh_seconds']:g}.",
        "",
        "| figure | goal | measured |",
        "| --- | --- | --- |",
        f"| staleness p50 | | {statistics.median(took):.1f} ms |",
        f"| staleness p99 | ≤ {GOAL_P99_MS:g} ms | {p99:.1f} ms |",
        f"| staleness max | | {took[-1]:.1f} ms |",
    ])


def _promote(live, version: int) -> None:
    requests.post(f"{live.url}/models/p/versions/{version}/promote", json={}, headers=live.headers,
                  timeout=60).raise_for_status()


def _promote_and_wait(first, second, version: int, run: int) -> float:
    _promote(first, version)
    return _staleness(second, version, run)


def _staleness(live, version: int, run: int) -> float:
    """Milliseconds from now until the first of ``run`` answers in a row that name ``version``."""
    returned, streak_started, streak = time.perf_counter(), None, 0
    while streak < run:
        asked = time.perf_counter()
        answer = requests.post(f"{live.url}/models/p/production/predict", json={"instances": [PROBE_ROW]}, timeout=60)
        if answer.status_code == 200 and answer.json()["version"] == version:
            streak_started = asked if streak == 0 else streak_started
            streak += 1
        else:
            streak = 0
    return (streak_started - returned) * 1000


if __name__ == "__main__":
    main()
