"""Webhook delivery from a running service: ``python -m bench.webhooks [--moves 20] [--pings 100] [--postgresql]``.

Starts one gunicorn instance (2 workers, default webhook settings but WEBHOOK_ALLOW_PRIVATE=1) and a
receiver on loopback that verifies every signature, then measures
1. latency: from a promote's response to its ``alias.moved`` event arriving, over ``--moves`` moves;
2. throughput: ``--pings`` pings queued at once to 1 subscription, then to 4, until all arrived;
3. the same latency while another subscription's receiver hangs (never answers in time).
Figures only; it writes JSON + Markdown to bench/results/.
"""
import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import requests

from bench import report
from bench.harness import server
from bench.harness.databases import postgres_database
from bench.harness.models import scaled_sum, upload
from bench.harness.traffic import move
from bench.harness.webhook_receiver import Receiver, poll

RESULTS = Path(__file__).resolve().with_name("results")
WORKERS = 2
DEADLINE_SECONDS = 300


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=20, help="promotes timed per latency run (default 20)")
    parser.add_argument("--pings", type=int, default=100, help="pings per subscription in the throughput runs (default 100)")
    parser.add_argument("--postgresql", action="store_true", help="run on a fresh PostgreSQL database (default SQLite)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results directory (default {RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the three scenarios, print and write the figures."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="registry-webhooks-") as tmp, Receiver() as receiver:
        database = postgres_database() if args.postgresql else nullcontext(f"sqlite:///{Path(tmp) / 'registry.db'}")
        with database as url, server.running(url, Path(tmp), "bench-admin-token", workers=WORKERS,
                                             env={"WEBHOOK_ALLOW_PRIVATE": "1"}) as (live,):
            for factor in (1, 2):
                upload(live, "timed", scaled_sum(factor)).raise_for_status()
            figures = {
                "latency": latency(live, receiver, "alone", args.moves),
                "throughput_1": throughput(live, receiver, ["one"], args.pings),
                "throughput_4": throughput(live, receiver, ["a", "b", "c", "d"], args.pings),
            }
            receiver.hang("hung")
            subscribe(live, receiver, "hung", ["alias.moved"])
            figures["latency_beside_a_hung_receiver"] = latency(live, receiver, "beside", args.moves)
    result = _summary(figures, args)
    text = _markdown(result)
    print(text)
    report.save("webhooks", result, text, args.out)


def subscribe(live, receiver, endpoint: str, events: list[str]) -> int:
    """A subscription of ``endpoint`` to ``events``; its id."""
    response = requests.post(f"{live.url}/webhooks", json={"url": receiver.url(endpoint), "events": events},
                             headers=live.headers, timeout=30)
    response.raise_for_status()
    receiver.trust(endpoint, response.json()["secret"])
    return response.json()["id"]


def latency(live, receiver, endpoint: str, moves: int) -> dict:
    """Seconds from each promote's response to its event's arrival: median and max."""
    hook = subscribe(live, receiver, endpoint, ["alias.moved"])
    returned = {}
    for i in range(moves):
        returned[move(live, "promote", "timed", 1 + i % 2, reason="bench")["event_id"]] = time.monotonic()
        arrived = poll(lambda: _arrivals(receiver, endpoint).keys() >= returned.keys() and _arrivals(receiver, endpoint),
                       timeout=DEADLINE_SECONDS)
    lags = [arrived[event] - at for event, at in returned.items()]
    requests.delete(f"{live.url}/webhooks/{hook}", headers=live.headers, timeout=30)
    return {"events": len(lags), "median_s": round(statistics.median(lags), 3), "max_s": round(max(lags), 3)}


def throughput(live, receiver, endpoints: list[str], pings: int) -> dict:
    """Deliveries per second of ``pings`` pings queued at once to each endpoint's subscription."""
    hooks = [subscribe(live, receiver, endpoint, ["version.archived"]) for endpoint in endpoints]
    started = time.monotonic()
    for _ in range(pings):
        for hook in hooks:
            requests.post(f"{live.url}/webhooks/{hook}/ping", headers=live.headers, timeout=30).raise_for_status()
    queued = time.monotonic() - started
    total = pings * len(hooks)
    poll(lambda: sum(len(receiver.events(e, "ping")) for e in endpoints) >= total, timeout=DEADLINE_SECONDS)
    last = max(r.at for e in endpoints for r in receiver.received(e))
    for hook in hooks:
        requests.delete(f"{live.url}/webhooks/{hook}", headers=live.headers, timeout=30)
    return {"subscriptions": len(hooks), "deliveries": total, "queueing_s": round(queued, 2),
            "per_second": round(total / (last - started), 1)}


def _arrivals(receiver, endpoint: str) -> dict[int, float]:
    """history_id -> when its alias.moved event was acknowledged."""
    return {r.payload["data"]["history_id"]: r.at for r in receiver.received(endpoint)
            if r.payload is not None and r.status < 300}


def _summary(figures: dict, args) -> dict:
    return {
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": report.command_line("bench.webhooks"),
        "machine": report.machine_facts(),
        "setup": f"1 instance x {WORKERS} gunicorn workers, {'PostgreSQL' if args.postgresql else 'SQLite'}, "
                 "default WEBHOOK_* settings (poll 1 s, 4 threads, timeout 5 s), receiver on loopback",
        **figures,
    }


def _markdown(result: dict) -> str:
    lines = [f"# Webhook delivery ({result['started_at']})", "", f"`{result['command']}`", "", result["setup"], "",
             "| scenario | events | median (s) | max (s) |", "|---|---|---|---|"]
    for name in ("latency", "latency_beside_a_hung_receiver"):
        row = result[name]
        lines.append(f"| {name.replace('_', ' ')}: promote returned → event acknowledged | {row['events']} | {row['median_s']} | {row['max_s']} |")
    lines += ["", "| subscriptions | deliveries | queueing the pings (s) | deliveries per second |", "|---|---|---|---|"]
    for name in ("throughput_1", "throughput_4"):
        row = result[name]
        lines.append(f"| {row['subscriptions']} | {row['deliveries']} | {row['queueing_s']} | {row['per_second']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
