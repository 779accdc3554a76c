"""A rolling upgrade of deploy/compose.yaml under prediction load: p99 and failures while both replicas
are replaced one at a time, against the same fleet's steady p99.

The fleet runs with podman-compose on locally built images (bench/harness/compose_fleet.py). LOAD
threads post one row to the production alias through nginx without pause, first for a steady window,
then while each replica in turn is stopped (SIGTERM: drain, requests in flight finished), removed,
created again and waited for. Goals (issue): zero failed requests, roll p99 within 2x the steady p99.
"""
import argparse
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

from bench import report
from bench.harness import compose_fleet
from bench.harness.models import expected_prediction, scaled_sum, upload
from bench.harness.traffic import Load

HERE = Path(__file__).parent
MODEL = "rolling"


def main() -> None:
    """Parse the options, bring the fleet up, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4, help="client threads posting without pause")
    parser.add_argument("--steady-seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="rolls of both replicas")
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts(), "images_built_seconds": compose_fleet.ensure_images()}
    fleet = compose_fleet.ComposeFleet()
    try:
        fleet.up()
        assert upload(fleet, MODEL, scaled_sum(2)).status_code == 201
        promoted = requests.post(f"{fleet.url}/models/{MODEL}/versions/1/promote", json={}, headers=fleet.headers, timeout=30)
        assert promoted.status_code == 200, promoted.text
        run["figures"] = measure(fleet, args)
    finally:
        fleet.down()
    text = describe(run)
    print(text)
    report.save("rolling-upgrade", run, text, HERE / "results", latest="rolling-upgrade")


def measure(fleet: compose_fleet.ComposeFleet, args) -> dict:
    """Steady load for a window, then the same load across ``rounds`` rolls of both replicas."""
    url = f"{fleet.url}/models/{MODEL}/production/predict"
    with Load([url], threads=args.threads) as load:
        time.sleep(args.steady_seconds)  # the measured window: load runs for this long
    steady = _summary(load.answers)
    with Load([url], threads=args.threads) as load:
        started = time.monotonic()
        for _ in range(args.rounds):
            for replica in compose_fleet.REPLICAS:
                fleet.replace(replica)
        roll_seconds = time.monotonic() - started
    rolling = _summary(load.answers)
    rolling["seconds"] = roll_seconds
    return {"steady": steady, "rolling": rolling, "p99_ratio": rolling["p99_ms"] / steady["p99_ms"]}


def _summary(answers) -> dict:
    latencies = sorted((answer.finished - answer.started) * 1000 for answer in answers)
    expected = expected_prediction(2)
    return {
        "requests": len(answers),
        "failed": sum(answer.status != 200 for answer in answers),
        "wrong": sum(answer.status == 200 and (answer.prediction is None or abs(answer.prediction - expected) > 1e-9)
                     for answer in answers),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": latencies[-1],
    }


def describe(run: dict) -> str:
    """The figures as Markdown."""
    figures, facts = run["figures"], run["machine"]
    steady, rolling = figures["steady"], figures["rolling"]
    lines = [
        f"# Rolling upgrade {run['started_at']}",
        "",
        "Command: `.venv/bin/python -m bench.rolling_upgrade` " + " ".join(
            f"--{key.replace('_', '-')} {value}" for key, value in run["options"].items()),
        f"Machine: {facts['nproc']} CPUs, {facts['cpu']}, load {facts['loadavg_at_start'][0]:.2f} at start, "
        f"commit {facts['git_commit']}",
        "",
        "| window | requests | failed | wrong | p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, window in (("steady", steady), (f"rolling ({rolling['seconds']:.0f} s)", rolling)):
        lines.append(f"| {name} | {window['requests']} | {window['failed']} | {window['wrong']} | "
                     f"{window['p50_ms']:.1f} | {window['p99_ms']:.1f} | {window['max_ms']:.1f} |")
    lines += ["", f"p99 during the roll ÷ steady p99: {figures['p99_ratio']:.2f} (goal ≤ 2); "
                  f"failed requests: {rolling['failed']} (goal 0)"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
