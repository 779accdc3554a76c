"""What the prediction log costs the predict route: the logistic alias route with every answer
logged against the same route logging none.

The registry serves the logistic regression of ``bench/models.py`` on ``production`` (2 workers,
SQLite); the model's share of logged answers is set to 0 and to 1 in turns (``PATCH /models/<name>``),
``--rounds`` times, each window of ``--seconds`` at c=8 with a single-row body after a warm-up that
lets every worker read the new share. Prints requests per second and p99 of both and their ratios
(goals: rps ≥ 0.9× and p99 ≤ 1.1× without logging), how many answers were logged, and how many
the log dropped.

    .venv/bin/python -m bench.prediction_log

Figures only; nothing passes or fails.
"""
import argparse
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import psutil
import requests

from bench import loadgen, models, report, servers
from bench.harness.traffic import move
from bench.many_models import _counters

HERE = Path(__file__).resolve().parent
NAME = "logged"
WARMUP_SECONDS = 3  # the workers read a model's share again at most every 2 s, when requests come


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts()}
    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        root = Path(tmp)
        body = models.write_bodies(root)[1]
        live = servers.start_registry(root / "registry")
        try:
            move(live, "promote", NAME, models.register(live, NAME, models.fit("logistic")))
            run["figures"] = measure(live, body, args)
        finally:
            live.stop()
    text = describe(run)
    print(text)
    report.save("prediction-log", run, text, HERE / "results", latest="prediction-log")


def measure(live, body: Path, args) -> dict:
    """rps and p99 with the share at 0 and at 1, in turns; and what the log wrote and dropped."""
    url = f"{live.url}/models/{NAME}/production/predict"
    found: dict[str, list[dict]] = {"off": [], "every answer": []}
    before = _counters(live)
    for _ in range(args.rounds):
        for label, share in (("off", 0.0), ("every answer", 1.0)):
            changed = requests.patch(f"{live.url}/models/{NAME}", json={"prediction_log": {"sample": share}},
                                     headers=live.headers, timeout=30)
            changed.raise_for_status()
            loadgen.run(url, body, args.concurrency, WARMUP_SECONDS)
            cpu_before = _workers_cpu_seconds(live)
            result = loadgen.run(url, body, args.concurrency, args.seconds)
            cpu = _workers_cpu_seconds(live) - cpu_before
            if result.failed:
                raise RuntimeError(f"{label}: {result.failed} failed requests")
            found[label].append({"rps": result.rps, "p99_ms": result.p99_ms, "requests": result.requests,
                                 "cpu_ms_per_request": 1000 * cpu / max(result.requests, 1)})
    after = _counters(live)
    return {
        "windows": found,
        "written": after["registry_prediction_log_written_total"] - before["registry_prediction_log_written_total"],
        "dropped": after["registry_prediction_log_dropped_total"] - before["registry_prediction_log_dropped_total"],
    }


def _workers_cpu_seconds(live) -> float:
    """CPU seconds (user + system) the server's workers have used so far: what a request costs them,
    which a shared machine's noise moves far less than requests per second."""
    workers = psutil.Process(live.process.pid).children()
    return sum(sum(worker.cpu_times()[:2]) for worker in workers)


def describe(run: dict) -> str:
    """The figures as Markdown."""
    f, o = run["figures"], run["options"]
    rps = {label: statistics.median(w["rps"] for w in windows) for label, windows in f["windows"].items()}
    p99 = {label: statistics.median(w["p99_ms"] for w in windows) for label, windows in f["windows"].items()}
    cpu = {label: statistics.median(w["cpu_ms_per_request"] for w in windows) for label, windows in f["windows"].items()}
    return "\n".join([
        f"# The prediction log's cost, {run['started_at']}", "",
        f"Logistic regression, alias route, single row, c={o['concurrency']}, {servers.WORKERS} workers, SQLite; "
        f"medians of {o['rounds']} windows of {o['seconds']} s each.", "",
        "| logged | rps | p99 | worker CPU per request |", "| --- | --- | --- | --- |",
        *(f"| {label} | {rps[label]:.0f} | {p99[label]:.2f} ms | {cpu[label]:.3f} ms |" for label in rps),
        "",
        f"- every answer logged ÷ none: rps {rps['every answer'] / rps['off']:.2f} (goal ≥ 0.9), "
        f"p99 {p99['every answer'] / p99['off']:.2f} (goal ≤ 1.1); worker CPU per request "
        f"{cpu['every answer'] / cpu['off']:.2f}× (the capacity it costs, steadier on a shared machine)",
        f"- written to the log during the run: {f['written']:.0f}; dropped: {f['dropped']:.0f}",
    ])


if __name__ == "__main__":
    main()
