"""What the service guarantees, tried under each WSGI server: hot swap, graceful stop, a dead worker.

    .venv/bin/python -m bench.server_guarantees [--servers gunicorn granian]

For each server (``bench/harness/server.py``'s ``SERVERS``), on a fresh SQLite database each time:

- hot swap: ten promotes and rollbacks under c=8 load on the alias route (``bench/swap.py``): failed
  requests, and p99 during the moves ÷ steady;
- graceful stop: a request in flight (its body half sent), then SIGTERM with DRAIN_SECONDS=2: whether
  /readyz answered 503 while new predictions were still answered, whether the request in flight got
  its 200 once the rest of its body came after the drain, the exit status, and whether the prediction
  log holds both predictions (every one is logged; the worker writes what it holds as it stops);
- a deadline counted from arrival: one worker with one thread held by a request whose body is half
  sent, a prediction with ``X-Request-Timeout: 0.5`` behind it, the held one let go 1.5 s later:
  the waiting prediction's status (503 when its wait counted against its deadline) and its time;
- a dead worker: SIGKILL to one of two workers after 50 predictions; whether a new worker took its
  place, whether its metric file was retired (``dead-<pid>.metrics``) and whether
  ``registry_predictions_total`` still counts the 50.

Prints one line per check and server and writes them to bench/results/. Figures and outcomes only;
nothing passes or fails.
"""
import argparse
import json
import os
import signal
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import psutil
import requests
from sqlalchemy import create_engine, func, select

from bench import models, report, swap
from bench.harness import server as e2e
from bench.harness.server import SERVERS
from bench.harness.traffic import move
from bench.servers import ADMIN_TOKEN
from registry.monitoring.tables import LoggedPrediction

HERE = Path(__file__).resolve().parent
DRAIN_SECONDS = 2
PREDICTIONS = 50


def main() -> None:
    """Run every check under every server; print and write the outcomes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", nargs="+", choices=list(SERVERS), default=list(SERVERS))
    parser.add_argument("--seconds", type=int, default=10, help="length of each hot-swap window")
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts(), "checks": {}}
    fitted = models.fit_models()
    lines = [f"# The service's guarantees under each server, {run['started_at']}", ""]
    for check in (hot_swap, graceful_stop, dead_worker, deadline_from_arrival):
        for server in args.servers:
            with tempfile.TemporaryDirectory(prefix="bench-guarantees-") as tmp:
                outcome = check(Path(tmp), server, fitted, args)
            outcome["load"] = round(os.getloadavg()[0], 2)
            run["checks"].setdefault(check.__name__, {})[server] = outcome
            lines.append(f"- {check.__name__}, {server}: {json.dumps(outcome)}")
            print(lines[-1], flush=True)
    report.save("server-guarantees", run, "\n".join(lines), HERE / "results", latest="server-guarantees")


def _start(root: Path, server: str, workers: int, **settings) -> e2e.LiveRegistry:
    env = e2e.service_env(f"sqlite:///{root}/registry.db", root / "artifacts", ADMIN_TOKEN, **settings)
    e2e.migrate(env)
    return e2e.start(env, root, workers=workers, server=server)


def _serve(live: e2e.LiveRegistry, fitted: dict, kind: str = "logistic") -> str:
    move(live, "promote", kind, models.register(live, kind, fitted[kind]))
    return f"{live.url}/models/{kind}/production/predict"


def hot_swap(root: Path, server: str, fitted: dict, args) -> dict:
    """Ten alias moves under load: moves made, failed requests, p99 during ÷ steady."""
    body = models.write_bodies(root)[1]
    live = _start(root, server, workers=2)
    try:
        swap.prepare(live, "swapped", models.versions_of("logistic", swap.VERSIONS))
        found = swap.run(live, "swapped", body, args.seconds, warmup=1, say=lambda _: None)
    finally:
        live.stop()
    return {"moves_ok": found["moves_ok"], "failed_requests": found["failed_requests"],
            "requests": found["during_swaps"]["requests"], "p99_ratio": found["p99_ratio"]}


def graceful_stop(root: Path, server: str, fitted: dict, args) -> dict:
    """SIGTERM with a request in flight and DRAIN_SECONDS: not ready first, the request answered, exit 0."""
    live = _start(root, server, workers=1, DRAIN_SECONDS=DRAIN_SECONDS, PREDICTION_LOG_SAMPLE=1)
    try:
        url = _serve(live, fitted)
        row = [0.0] * models.FEATURES
        slow = _HalfSent(live.url, url.removeprefix(live.url), {"instances": [row] * 2000})
        live.process.send_signal(signal.SIGTERM)
        readyz, served = _during_drain(live.url, url, row)
        time.sleep(DRAIN_SECONDS + 1)  # past the drain: the server has begun to stop
        status = slow.finish()
        exit_status = live.process.wait(timeout=60)
    finally:
        live.stop()
    return {"readyz_during_drain": readyz, "predict_during_drain": served, "in_flight_status": status,
            "exit_status": exit_status, "logged_of_2": _logged(live.env["DATABASE_URL"])}


def _logged(database_url: str) -> int:
    """Entries in the prediction log: the worker's last ones are written as it stops."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(LoggedPrediction)).scalar()
    finally:
        engine.dispose()


def _during_drain(base: str, url: str, row: list) -> tuple[int, int]:
    """/readyz's status once it stops answering 200 (within the drain), and a prediction's status then."""
    deadline = time.monotonic() + DRAIN_SECONDS
    readyz = 200
    while readyz == 200 and time.monotonic() < deadline:
        readyz = requests.get(f"{base}/readyz", timeout=5).status_code
    return readyz, requests.post(url, json={"instances": [row]}, timeout=5).status_code


class _HalfSent:
    """A JSON POST whose headers and first half of the body are sent at once, the rest at ``finish``."""

    def __init__(self, base: str, path: str, payload: dict):
        host, port = base.removeprefix("http://").split(":")
        self._body = json.dumps(payload).encode()
        self._socket = socket.create_connection((host, int(port)), timeout=60)
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(self._body)}\r\nConnection: close\r\n\r\n").encode()
        self._socket.sendall(head + self._body[: len(self._body) // 2])

    def finish(self) -> int:
        """Send the rest; the answer's status (0 when the connection closed without one)."""
        self._socket.sendall(self._body[len(self._body) // 2:])
        with self._socket, self._socket.makefile("rb") as answer:
            line = answer.readline().split()
        return int(line[1]) if len(line) > 1 else 0


def dead_worker(root: Path, server: str, fitted: dict, args) -> dict:
    """SIGKILL to one of two workers after PREDICTIONS predictions: respawned, file retired, counts kept."""
    directory = root / "metrics"
    live = _start(root, server, workers=2, PROMETHEUS_MULTIPROC_DIR=directory)
    try:
        url = _serve(live, fitted)
        row = [0.0] * models.FEATURES
        with requests.Session() as session:
            for _ in range(PREDICTIONS):
                session.post(url, json={"instances": [row]}, timeout=10).raise_for_status()
        time.sleep(2)  # every worker flushes its counts about once a second
        before = _counted(live.url)
        workers = {child.pid for child in psutil.Process(live.process.pid).children()}
        victim = max(workers, key=lambda pid: (directory / f"{pid}.metrics").exists())
        os.kill(victim, signal.SIGKILL)
        respawned = _new_worker(live, workers - {victim})
        time.sleep(2)
        after = _counted(live.url)
    finally:
        live.stop()
    return {"counted_before": before, "counted_after": after, "respawned": respawned,
            "file_retired": (directory / f"dead-{victim}.metrics").exists() and not (directory / f"{victim}.metrics").exists()}


def _new_worker(live: e2e.LiveRegistry, survivors: set[int], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = {child.pid for child in psutil.Process(live.process.pid).children()}
        if len(children - survivors) >= 1 and len(children) >= live.workers:
            return requests.get(f"{live.url}/readyz", timeout=10).status_code == 200
        time.sleep(0.1)
    return False


def _counted(base: str) -> float:
    """registry_predictions_total summed over its series, as /metrics shows it."""
    text = requests.get(f"{base}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("registry_predictions_total{"))


def deadline_from_arrival(root: Path, server: str, fitted: dict, args) -> dict:
    """A prediction with a 0.5 s deadline queued 1.5 s behind a held thread: its status and time."""
    live = _start(root, server, workers=1, WORKER_THREADS=1)
    try:
        url = _serve(live, fitted)
        row = [0.0] * models.FEATURES
        held = _HalfSent(live.url, url.removeprefix(live.url), {"instances": [row]})
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            waiting = pool.submit(requests.post, url, json={"instances": [row]},
                                  headers={"X-Request-Timeout": "0.5"}, timeout=30)
            time.sleep(1.5)
            held_status = held.finish()
            status = waiting.result().status_code
            seconds = time.monotonic() - started
    finally:
        live.stop()
    return {"held_status": held_status, "waiting_status": status, "waiting_seconds": round(seconds, 2)}


if __name__ == "__main__":
    main()
