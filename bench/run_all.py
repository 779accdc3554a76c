"""Run every benchmark and report: ``python -m bench.run_all [--duration 10]`` (``make bench``).

Starts the registry and the baseline app under gunicorn (2 workers each, BLAS threads pinned to 1),
drives them with wrk at 127.0.0.1, prints a table, and writes JSON + Markdown to bench/results/.
Figures only: nothing here passes or fails on time.
"""
import argparse
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import inference, loadgen, models, predict, report, servers, startup, swap
from bench.harness.traffic import move

RESULTS = Path(__file__).resolve().with_name("results")
SCENARIOS = ("predict", "swap", "inference", "startup")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk window (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load before each window (default 1)")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated wrk connection counts (default 1,8)")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--swap-models", default="logistic", help="models to swap under load: logistic,forest")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results directory (default {RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Start both servers, run the scenarios, print and write the figures."""
    args = parse_args(argv)
    loadgen.require_wrk()
    run = {
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": report.command_line(),
        "machine": report.machine_facts(),
        "setup": (f"gunicorn {servers.WORKERS} workers per server (gunicorn.conf.py settings), BLAS threads 1, "
                  f"SQLite; wrk 1 thread, {args.duration} s per window after {args.warmup} s warm-up; "
                  f"{models.FEATURES} features; forest = 100 trees; 2-class"),
        "options": {k: str(v) for k, v in vars(args).items()},
    }
    if report.busy(run["machine"]):
        print(f"warning: load average {run['machine']['loadavg_at_start'][0]:.1f} on {run['machine']['nproc']} CPUs: "
              "other work is running; rps and latency will be noisy")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="registry-bench-") as tmp:
        run.update(_scenarios(Path(tmp), args))
    run["seconds_total"] = round(time.monotonic() - began, 1)
    run["machine"]["loadavg_at_end"] = list(os.getloadavg())
    print()
    print(report.console(run))
    report.write(run, args.out)
    print(f"(total {run['seconds_total']} s)")


def _scenarios(root: Path, args: argparse.Namespace) -> dict:
    """Run the chosen scenarios under ``root``: those against live servers first, then those without; their figures."""
    scenarios = args.only or list(SCENARIOS)
    fitted = models.fit_models()
    found = _served(root, args, scenarios, fitted) if {"predict", "swap"} & set(scenarios) else {}
    # With no server running, so that these have the cores to themselves.
    if "inference" in scenarios:
        print("the model alone, in process (registry predictor vs scikit-learn):")
        found["inference"] = inference.run(fitted)
    if "startup" in scenarios:
        print(f"start-up to the first answer, {startup.COUNT} aliased models ({startup.RUNS} runs each):")
        (root / "startup").mkdir()
        found["startup"] = startup.run(root / "startup")
    return found


def _served(root: Path, args: argparse.Namespace, scenarios: list[str], fitted: dict) -> dict:
    """Start the servers, run the predict and swap scenarios, stop the servers; their figures."""
    bodies = models.write_bodies(root)
    print("starting the registry and the baseline (2 workers each) ...")
    registry = servers.start_registry(root)
    baseline = None
    found = {}
    try:
        served = {}
        for model, estimator in fitted.items():
            name = f"bench-{model}"
            served[model] = (name, models.register(registry, name, estimator))
            move(registry, "promote", name, served[model][1], reason="bench")
        baseline = servers.start_baseline(root, {m: models.save(e, root / f"{m}.joblib") for m, e in fitted.items()})
        if "predict" in scenarios:
            print("predict (registry alias + pinned routes vs baseline):")
            concurrencies = [int(c) for c in args.concurrency.split(",")]
            found["predict"] = predict.run(registry, baseline, served, bodies, concurrencies, args.duration, args.warmup)
            found["ratios"] = predict.ratios(found["predict"])
        if "swap" in scenarios:
            baseline.stop()  # not needed any more: leave the cores to the registry
            found["swap"] = [_swap(registry, model, bodies[1], args) for model in args.swap_models.split(",")]
    finally:
        registry.stop()
        if baseline is not None:
            baseline.stop()
    return found


def _swap(registry, model: str, body: Path, args: argparse.Namespace) -> dict:
    name = f"bench-swap-{model}"
    print(f"swap under load ({model}, c={swap.CONNECTIONS}, {len(swap.MOVES)} moves):")
    swap.prepare(registry, name, models.versions_of(model, swap.VERSIONS))
    return swap.run(registry, name, body, args.duration, args.warmup)


if __name__ == "__main__":
    main()
