"""What the ledger's hash chain costs a promote: promotes with the chain and without it, in-process.

``python -m bench.ledger [--promotes 200] [--rounds 5] [--postgresql]``

One app behind Flask's test client (no sockets, no gunicorn) on a migrated database (a SQLite file, or
with ``--postgresql`` a fresh database on 127.0.0.1:5432) and a model of two versions. Promotes
alternate between them (each one moves the alias and appends one history entry), in interleaved
rounds: with the chain (lock the head, hand out the id, hash, move the head) and without it (the
entry gets fixed hashes and the database's id, as if there were no chain). Wall time per promote,
median over rounds; the chain's own time inside a promote is measured too.
"""
import argparse
import io
import statistics
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import joblib
from flask_migrate import upgrade

from api import create_app
from bench import report
from bench.harness.databases import POSTGRES_URL, postgres_database
from bench.harness.models import scaled_sum
from config import BASE_DIR, load_with
from registry import ledger

TOKEN = "bench-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(database_url: str, root: Path):
    """A registry on ``database_url`` with model ``m`` of two versions, v1 on production; its test client."""
    app = create_app(load_with({
        "DATABASE_URL": database_url, "ARTIFACT_ROOT": str(root / "artifacts"),
        "ARTIFACT_CACHE_DIR": root / "artifact-cache", "ADMIN_TOKEN": TOKEN, "WATCH_ALIASES": False,
        "WEBHOOK_DELIVER_IN_WORKERS": False, "MONITOR_SECONDS": 0, "ROLLOUT_TICK_SECONDS": 0,
        "ARTIFACT_SCRUB_SECONDS": 0, "PROMETHEUS_MULTIPROC_DIR": None, "SECRET_KEY": "bench",
    }))
    with app.app_context():
        upgrade(directory=str(BASE_DIR / "migrations"))
    client = app.test_client()
    for factor in (1, 2):
        buffer = io.BytesIO()
        joblib.dump(scaled_sum(factor), buffer)
        uploaded = client.post("/models/m/versions", data={"artifact": (io.BytesIO(buffer.getvalue()), "m.joblib")},
                               headers=AUTH)
        assert uploaded.status_code == 201, uploaded.get_data(as_text=True)
    _promote(client, 1)
    return client


def _promote(client, version: int) -> None:
    response = client.post(f"/models/m/versions/{version}/promote", json={"reason": "bench"}, headers=AUTH)
    assert response.status_code == 200 and response.get_json()["event_id"] is not None, response.get_json()


class Timed:
    """``ledger.link`` with the time spent in it added up."""

    def __init__(self, link):
        self.link, self.seconds = link, 0.0

    def __call__(self, connection, entry, **tables):
        started = time.perf_counter()
        try:
            return self.link(connection, entry, **tables)
        finally:
            self.seconds += time.perf_counter() - started


def _unchained(connection, entry, *, head, entries) -> None:
    """No chain: the entry gets fixed hashes (its columns are required) and the database's id."""
    entry.prev_hash = entry.hash = ledger.GENESIS


def measure(client, promotes: int, rounds: int) -> dict:
    """Median ms per promote with and without the chain, and the chain's ms inside a promote."""
    chained_link, samples = ledger.link, {"chained": [], "unchained": [], "chain_itself": []}
    version = 1
    for _ in range(3):  # warm both paths
        for link in (chained_link, _unchained):
            ledger.link = link
            version = 3 - version
            _promote(client, version)
    try:
        for _ in range(rounds):
            for label, link in (("chained", Timed(chained_link)), ("unchained", _unchained)):
                ledger.link = link
                started = time.perf_counter()
                for _ in range(promotes):
                    version = 3 - version
                    _promote(client, version)
                samples[label].append((time.perf_counter() - started) / promotes * 1000)
                if label == "chained":
                    samples["chain_itself"].append(link.seconds / promotes * 1000)
    finally:
        ledger.link = chained_link
    return {label: round(statistics.median(values), 3) for label, values in samples.items()}


def main() -> None:
    """Measure on SQLite, and on PostgreSQL when asked; print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.splitlines()[0])
    parser.add_argument("--promotes", type=int, default=200, help="promotes per round and path")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgresql", action="store_true", help=f"also on PostgreSQL at {POSTGRES_URL}")
    parser.add_argument("--out", type=Path, default=BASE_DIR / "bench" / "results")
    args = parser.parse_args()
    run = {"command": report.command_line("bench.ledger"), "started_at": datetime.now(timezone.utc).isoformat(),
           "machine": report.machine_facts(), "promotes": args.promotes, "rounds": args.rounds, "backends": {}}
    lines = ["| backend | promote ms (chained) | promote ms (no chain) | the chain's ms in a promote | share |",
             "| --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as scratch, ExitStack() as stack:
        urls = {"sqlite": f"sqlite:///{scratch}/registry.db"}
        if args.postgresql:
            urls["postgresql"] = stack.enter_context(postgres_database(POSTGRES_URL))
        for backend, url in urls.items():
            root = Path(scratch) / backend
            root.mkdir()
            figures = measure(_client(url, root), args.promotes, args.rounds)
            figures["share"] = round(figures["chain_itself"] / figures["chained"], 4)
            run["backends"][backend] = figures
            lines.append(f"| {backend} | {figures['chained']:.2f} | {figures['unchained']:.2f} | "
                         f"{figures['chain_itself']:.3f} | {figures['share']:.1%} |")
            print(lines[-1])
    text = "\n".join([f"# The ledger's cost to a promote\n\n`{run['command']}`\n", *lines])
    report.save("ledger", run, text, args.out)


if __name__ == "__main__":
    main()
