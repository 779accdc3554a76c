"""How close the predict route comes to the framework's floor: Flask and gunicorn doing nothing else.

The floor is ``/floor/predict`` of the baseline app (``bench/baseline_app.py``): it parses the same
JSON body and answers a constant. The registry serves a logistic regression, a 100-tree random
forest and a 100-tree depth-6 XGBoost booster uploaded as its JSON file (``bench/models.py``; the
booster where XGBoost is installed) on ``production``; both servers run with the repository's gunicorn
settings and two workers. Single-row bodies, c=8, wrk's closed loop; the three targets are measured
in turns, ``--rounds`` times, so drift in the machine's load reaches all of them alike.

    .venv/bin/python -m bench.floor

Prints requests per second and server CPU per request of each target, and each model's ratio to the
floor by both (goals: logistic ≥ 0.85, forest and XGBoost ≥ 0.8), and writes them to bench/results/. Figures
only; nothing passes or fails. gunicorn's workers keep the keep-alive connections they accepted, so
now and then one of the two gets most of wrk's eight and either server's rps halves: such a window
is measured again, and the report says how many were.
"""
import argparse
import os
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench import models, predict, report, servers
from bench.harness.traffic import move

HERE = Path(__file__).resolve().parent
GOALS = {"logistic": 0.85, "forest": 0.8, "xgboost": 0.8}
LOPSIDED = 0.7  # the busiest of the two workers' share of their CPU beyond which a window is measured again
TRIES = 4


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--worker-class", choices=["gthread", "sync"], default="gthread",
                        help="gunicorn's worker for both servers (gthread keeps connections alive; sync does not)")
    args = parser.parse_args()
    if args.worker_class != "gthread":
        os.environ["GUNICORN_CMD_ARGS"] = f"--worker-class {args.worker_class}"  # over gunicorn.conf.py's
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts()}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        root = Path(tmp)
        body = models.write_bodies(root)[1]
        fitted = models.fit_models()
        registry = servers.start_registry(root / "registry")
        baseline = servers.start_baseline(root, {})
        try:
            targets = {"floor": (baseline, f"{baseline.url}/floor/predict")}
            for kind, estimator in fitted.items():
                version = models.register(registry, kind, estimator)
                move(registry, "promote", kind, version)
                targets[kind] = (registry, f"{registry.url}/models/{kind}/production/predict")
            booster = models.xgboost_file()
            if booster is not None:
                move(registry, "promote", "xgboost", models.register_file(registry, "xgboost", "model.json", booster))
                targets["xgboost"] = (registry, f"{registry.url}/models/xgboost/production/predict")
            run["figures"] = measure(targets, body, args)
        finally:
            baseline.stop()
            registry.stop()
    text = describe(run)
    print(text)
    report.save("floor", run, text, HERE / "results", latest="floor")


def measure(targets: dict, body: Path, args) -> dict[str, list[dict]]:
    """Every target's figures in every round (after one unmeasured second each): requests per second,
    and the CPU its server (master and workers) spent per request, which the machine's other load
    moves far less than throughput.

    A window in which one worker did more than ``LOPSIDED`` of the work is measured again (up to
    ``TRIES`` times): gunicorn had given it most of wrk's connections, which keep-alive then holds
    there, and such a window measures that draw, not the app (it halves either server's rps)."""
    found: dict[str, list[dict]] = {name: [] for name in targets}
    for _ in range(args.rounds):
        for name, (server, url) in targets.items():
            for tries in range(1, TRIES + 1):
                figures = predict.measure(server.process.pid, url, body, args.concurrency, args.seconds, warmup=1)
                if figures["non_2xx"] or figures["socket_errors"]:
                    raise RuntimeError(f"{name}: {figures['non_2xx']} failed answers, "
                                       f"{figures['socket_errors']} socket errors")
                if figures["busiest_worker_share"] <= LOPSIDED:
                    break
            found[name].append({"rps": figures["rps"], "cpu_ms": figures["server_cpu_ms_per_request"],
                                "busiest_worker_share": figures["busiest_worker_share"], "tries": tries})
    return found


def describe(run: dict) -> str:
    """The figures as Markdown: median requests per second and server CPU per request, and each model's
    ratio to the floor (rps ÷ the floor's, and the floor's CPU per request ÷ its own)."""
    rps = {name: statistics.median(r["rps"] for r in rounds) for name, rounds in run["figures"].items()}
    cpu = {name: statistics.median(r["cpu_ms"] for r in rounds) for name, rounds in run["figures"].items()}
    o = run["options"]
    lines = [f"# Predict route vs the floor, {run['started_at']}", "",
             f"Single row, alias route, c={o['concurrency']}, {servers.WORKERS} {o['worker_class']} workers, "
             f"medians of {o['rounds']} "
             f"windows of {o['seconds']} s ({_redone(run)} measured again: one worker had over "
             f"{LOPSIDED:.0%} of the work).", "",
             "| target | rps | ÷ floor | server CPU per request | floor's ÷ this | goal |",
             "| --- | --- | --- | --- | --- | --- |",
             f"| floor (JSON parsed, a constant answered) | {rps['floor']:.0f} | 1.00 | {cpu['floor']:.3f} ms | 1.00 | |"]
    for kind, goal in ((kind, goal) for kind, goal in GOALS.items() if kind in rps):
        lines.append(f"| registry, {kind} | {rps[kind]:.0f} | {rps[kind] / rps['floor']:.2f} | {cpu[kind]:.3f} ms "
                     f"| {cpu['floor'] / cpu[kind]:.2f} | ≥ {goal} |")
    return "\n".join(lines)


def _redone(run: dict) -> int:
    return sum(r.get("tries", 1) - 1 for rounds in run["figures"].values() for r in rounds)


if __name__ == "__main__":
    main()
