"""The cost of a rollout: ``python -m bench.rollouts [--duration 10] [--rounds 2]``.

One registry (gunicorn, 2 workers, SQLite) serves two models built from the same three
logistic-regression fits: ``plain`` (production on v1, nothing else) and ``rolled`` (production on v1
with a 10 % canary on v2 and a 50 % shadow on v3). wrk drives each alias route in turn, interleaved
``--rounds`` times so that drift on a shared machine hits both alike; per window: rps, p50, p99,
failed requests and server CPU ms per request. The rollout's own figures (canary share, shadow
compared/dropped, agreement) are read back at the end. Figures only: nothing passes or fails on time.
"""
import argparse
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

from bench import loadgen, models, report, servers
from bench.harness.traffic import move

RESULTS = Path(__file__).resolve().with_name("results")
ROLLOUT = {"canary": {"version": 2, "percent": 10}, "shadow": {"version": 3, "percent": 50}, "reason": "bench"}
ROUTES = ("plain", "rolled")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.rollouts", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk window (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load before each window (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="plain/rolled window pairs, interleaved (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results directory (default {RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Start the registry, measure both routes, print and write the figures."""
    args = parse_args(argv)
    loadgen.require_wrk()
    run = {
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": report.command_line("bench.rollouts"),
        "machine": report.machine_facts(),
        "setup": (f"gunicorn {servers.WORKERS} workers (gunicorn.conf.py settings), SQLite; wrk 1 thread, "
                  f"c={args.concurrency}, {args.duration} s per window after {args.warmup} s warm-up, "
                  f"{args.rounds} interleaved rounds; logistic regression, {models.FEATURES} features, 1-row body; "
                  "rolled = 10 % canary + 50 % shadow, no sticky header"),
    }
    with tempfile.TemporaryDirectory(prefix="registry-bench-rollouts-") as tmp:
        run.update(_measure(Path(tmp), args))
    run["machine"]["loadavg_at_end"] = list(os.getloadavg())
    text = markdown(run)
    print("\n" + text.replace("`", ""))
    report.save("rollouts", run, text, args.out)


def _measure(root: Path, args: argparse.Namespace) -> dict:
    body = models.write_bodies(root)[1]
    print("starting the registry (2 workers) ...")
    registry = servers.start_registry(root)
    try:
        fits = models.versions_of("logistic", 3)
        for name in ROUTES:
            for estimator in fits:
                models.register(registry, name, estimator)
            move(registry, "promote", name, 1, reason="bench")
        started = requests.put(f"{registry.url}/models/rolled/aliases/production/rollout", json=ROLLOUT,
                               headers=registry.headers, timeout=60)
        started.raise_for_status()
        time.sleep(servers.REFRESH_SECONDS * 1.5)  # every worker serves the rollout
        windows = {name: [] for name in ROUTES}
        for round_number in range(args.rounds):
            for name in ROUTES:
                windows[name].append(_window(registry, name, body, args))
                print(f"  round {round_number + 1} {name:7s} {_line(windows[name][-1])}")
        time.sleep(2)  # the figures are flushed every second by each worker
        figures = requests.get(f"{registry.url}/models/rolled/aliases/production/rollout", timeout=30).json()
    finally:
        registry.stop()
    return {"windows": windows, "summary": summary(windows), "rollout_figures": figures}


def _window(registry, name: str, body: Path, args: argparse.Namespace) -> dict:
    url = f"{registry.url}/models/{name}/production/predict"
    if args.warmup:
        loadgen.run(url, body, args.concurrency, args.warmup)
    cpu_before = servers.cpu_seconds(registry.process.pid)
    result = loadgen.run(url, body, args.concurrency, args.duration)
    cpu = servers.cpu_seconds(registry.process.pid) - cpu_before
    return {**result.to_dict(), "server_cpu_ms_per_request": round(cpu * 1000 / max(result.requests, 1), 3)}


def _line(window: dict) -> str:
    return (f"{window['rps']:8.1f} rps  p50 {window['p50_ms']:7.2f} ms  p99 {window['p99_ms']:7.2f} ms  "
            f"cpu {window['server_cpu_ms_per_request']:.2f} ms/req  failed {window['failed']}  versions {window['versions']}")


def summary(windows: dict[str, list[dict]]) -> dict:
    """Per route: total requests, mean rps, median p50, worst and median p99, mean CPU per request; then rolled ÷ plain."""
    def pooled(name):
        runs = windows[name]
        return {
            "requests": sum(w["requests"] for w in runs),
            "failed": sum(w["failed"] for w in runs),
            "rps": round(sum(w["rps"] for w in runs) / len(runs), 1),
            "p50_ms": round(sorted(w["p50_ms"] for w in runs)[len(runs) // 2], 3),
            "p99_ms": round(max(w["p99_ms"] for w in runs), 3),
            "p99_ms_median": round(sorted(w["p99_ms"] for w in runs)[len(runs) // 2], 3),
            "server_cpu_ms_per_request": round(sum(w["server_cpu_ms_per_request"] for w in runs) / len(runs), 3),
        }

    plain, rolled = pooled("plain"), pooled("rolled")
    ratios = {key: round(rolled[key] / plain[key], 3) if plain[key] else None
              for key in ("rps", "p50_ms", "p99_ms", "p99_ms_median", "server_cpu_ms_per_request")}
    return {"plain": plain, "rolled": rolled, "rolled_over_plain": ratios}


def markdown(run: dict) -> str:
    """The run as Markdown: facts, per-window table, summary and the rollout's own figures."""
    facts, result = run["machine"], run["summary"]
    rows = [f"| {name} | {i + 1} | {w['rps']:.1f} | {w['p50_ms']:.2f} | {w['p99_ms']:.2f} | "
            f"{w['server_cpu_ms_per_request']:.2f} | {w['failed']} | {w['versions']} |"
            for name in ROUTES for i, w in enumerate(run["windows"][name])]
    ratio = result["rolled_over_plain"]
    figures = run["rollout_figures"]
    return "\n".join([
        f"# Rollout cost {run['started_at']}",
        "",
        f"Command: `{run['command']}`  ",
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), load average at start "
        f"{', '.join(f'{x:.2f}' for x in facts['loadavg_at_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in facts['loadavg_at_end'])}; commit {facts['git_commit']}  ",
        f"Setup: {run['setup']}",
        "",
        "| route | round | rps | p50 ms | p99 ms | server CPU ms/req | failed | versions answered |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Rolled ÷ plain: rps {ratio['rps']}, p50 {ratio['p50_ms']}, p99 worst window {ratio['p99_ms']}, "
        f"p99 median window {ratio['p99_ms_median']}, "
        f"server CPU per request {ratio['server_cpu_ms_per_request']}.",
        "",
        f"Rollout figures (summed over the workers): primary {figures['primary']['requests']} requests, "
        f"canary {figures['canary']['requests']}; shadow compared {figures['shadow']['compared']}, "
        f"dropped {figures['shadow']['dropped']}, errors {figures['shadow']['errors']}, "
        f"agreement {figures['shadow'].get('agreement')}.",
    ])


if __name__ == "__main__":
    main()
