"""What a refusal costs the server against the prediction it refuses: under a flood most requests are
refusals, and each one's CPU is taken from the models still answered.

The registry serves the logistic regression of ``bench/models.py`` on ``production`` (2 workers, SQLite,
the prediction log off). Three targets on the alias route, measured in turns ``--rounds`` times, each a
window of ``--seconds`` at c=``--concurrency``: a single-row body answered; the same body refused, its
``X-Request-Timeout`` (1 µs) passed before the prediction could start (the path a model or worker at its
bound takes: refused before the body is parsed, problem+json with Retry-After); and a 2,000-row body
refused the same way (its 100 KB still read off the socket). Prints the workers' CPU per request of
each (medians of the rounds; a shared machine moves it far less than requests per second) and each
refusal's ratio to the answer's.

    .venv/bin/python -m bench.refusal_cost

Figures only; nothing passes or fails.
"""
import argparse
import json
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench import loadgen, models, report, servers
from bench.harness.traffic import move
from bench.prediction_log import _workers_cpu_seconds

HERE = Path(__file__).resolve().parent
NAME = "refused"
PASSED = {"X-Request-Timeout": "0.000001"}  # passed before any prediction can start
LARGE_ROWS = 2000


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts()}
    with tempfile.TemporaryDirectory(prefix="bench-refusal-") as tmp:
        root = Path(tmp)
        one = models.write_bodies(root)[1]
        X, _ = models.training_data()
        large = root / f"body-{LARGE_ROWS}.json"
        large.write_text(json.dumps({"instances": np.round(np.resize(X, (LARGE_ROWS, X.shape[1])), 6).tolist()}))
        live = servers.start_registry(root / "registry", PREDICTION_LOG_SAMPLE=0.0)
        try:
            move(live, "promote", NAME, models.register(live, NAME, models.fit("logistic")))
            targets = {"answered, 1 row": (one, {}, "2"), "refused, 1 row": (one, PASSED, "5"),
                       f"refused, {LARGE_ROWS:,} rows": (large, PASSED, "5")}
            run["figures"] = measure(f"{live.url}/models/{NAME}/production/predict", live, targets, args)
        finally:
            live.stop()
    text = describe(run)
    print(text)
    report.save("refusal-cost", run, text, HERE / "results", latest="refusal-cost")


def measure(url: str, live, targets: dict[str, tuple[Path, dict, str]], args) -> dict:
    """Each target's windows (rps, CPU per request), in turns; a window whose answers are not all of the
    target's class (2xx or 5xx) stops the run."""
    windows: dict[str, list[dict]] = {label: [] for label in targets}
    for _ in range(args.rounds):
        for label, (body, headers, status_class) in targets.items():
            before = _workers_cpu_seconds(live)
            result = loadgen.run(url, body, args.concurrency, args.seconds, headers)
            cpu = _workers_cpu_seconds(live) - before
            wrong = {status: n for status, n in result.statuses.items() if not status.startswith(status_class)}
            if wrong or result.socket_errors:
                raise RuntimeError(f"{label}: {wrong or result.socket_errors} unexpected answers")
            windows[label].append({"rps": result.rps, "requests": result.requests,
                                   "cpu_us_per_request": 1e6 * cpu / max(result.requests, 1)})
    return {"windows": windows,
            "median_cpu_us_per_request": {label: statistics.median(w["cpu_us_per_request"] for w in found)
                                          for label, found in windows.items()}}


def describe(run: dict) -> str:
    """The run as Markdown."""
    o, facts, f = run["options"], run["machine"], run["figures"]
    answered = f["median_cpu_us_per_request"]["answered, 1 row"]
    lines = [
        f"# What a refusal costs, {run['started_at']}", "",
        f"{servers.WORKERS} workers, c={o['concurrency']}, {o['rounds']} rounds of {o['seconds']} s a target, in turns. "
        f"Machine: {facts['nproc']} CPUs, load average at start {facts['loadavg_at_start'][0]:.1f}.", "",
        "| target | workers' CPU a request, each round (µs) | median | ÷ the answer's |",
        "| --- | --- | --- | --- |",
    ]
    for label, found in f["windows"].items():
        median = f["median_cpu_us_per_request"][label]
        each = ", ".join(format(window["cpu_us_per_request"], ".0f") for window in found)
        lines.append(f"| {label} | {each} | {median:.0f} | {median / answered:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
