"""Isolation under overload: a slow model flooded beside a quiet one, with admission control.

The registry (2 gunicorn workers of ``--threads`` threads; MAX_IN_FLIGHT_PER_MODEL and MAX_IN_FLIGHT at
their defaults unless given) serves ``hot``, a forest of ``--trees`` trees asked ``--rows`` rows a
request, and ``quiet``, a logistic regression asked one row with a shadow on all of its traffic. The
scenario (``bench/harness/overload.py``): ``hot`` alone, one caller at a time (its time per request);
``quiet`` alone at one request per ``--interval`` s (its idle p99); ``--flood-threads`` callers on ``hot``
for ``--seconds`` while ``quiet`` goes on, closed loop or (``--flood-times``) open loop at that many times
``hot``'s capacity, measured first with 4 callers; ``quiet`` alone again. Every request sends
``X-Request-Timeout: --deadline``. Prints and writes to bench/results/: per phase the statuses, rps,
p50/p99 (refusals apart), the requests that outlived their deadline, and the shadow runs shed and run.
With ``--split-cpus`` the server runs on the first half of the machine's CPUs and every caller on the rest
(``bench/harness/cpus.py``), as a deployment's callers run elsewhere; otherwise they share them.

    .venv/bin/python -m bench.overload
    .venv/bin/python -m bench.overload --threads 8 --flood-threads 40 --seconds 20
    .venv/bin/python -m bench.overload --flood-times 5 --flood-threads 40 --low-priority-from-walks 0
    .venv/bin/python -m bench.overload --flood-rate 300 --quiet-rate 360 --flood-threads 40 --split-cpus

Figures only; nothing passes or fails.
"""
import argparse
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from bench import report
from bench.harness import cpus
from bench.harness import server as e2e
from bench.harness.overload import Scenario, metric, overload, percentile, scrape, serve_models, summary
from bench.servers import ADMIN_TOKEN, REFRESH_SECONDS, WORKERS

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Parse the options, run the scenario, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=WORKERS, help="gunicorn's workers")
    parser.add_argument("--threads", type=int, default=4, help="WORKER_THREADS of each worker")
    parser.add_argument("--max-in-flight-per-model", type=int, default=None, help="default: the service's")
    parser.add_argument("--max-in-flight", type=int, default=None, help="default: the service's")
    parser.add_argument("--low-priority-from-walks", type=int, default=None,
                        help="LOW_PRIORITY_FROM_WALKS (0: every walk at the worker's priority); default: the service's")
    parser.add_argument("--low-priority-nice", default=None,
                        help="LOW_PRIORITY_NICE (1 to 19, or idle); default: the service's")
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--flood-threads", type=int, default=20)
    parser.add_argument("--flood-times", type=float, default=None,
                        help="open loop at this many times hot's capacity (measured first); default: closed loop")
    parser.add_argument("--flood-rate", type=float, default=None,
                        help="open loop at this many requests a second (not measured: runs compared at one rate)")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between the quiet model's requests")
    parser.add_argument("--quiet-share", type=float, default=None,
                        help="call quiet at this share of its capacity (measured first; 0.2 is the issue's 20 %%), "
                             "by 4 paced callers, instead of every --interval s")
    parser.add_argument("--quiet-rate", type=float, default=None,
                        help="call quiet at this many requests a second, by 4 paced callers "
                             "(runs compared at one load)")
    parser.add_argument("--seconds", type=float, default=10.0, help="the flood's length")
    parser.add_argument("--idle", type=float, default=None,
                        help="each quiet phase's length; default: the flood's (--seconds), so that the idle p99 "
                             "rests on as many answers as the flood's")
    parser.add_argument("--deadline", type=float, default=1.0, help="X-Request-Timeout of every request")
    parser.add_argument("--split-cpus", action="store_true",
                        help="the server on the first half of the CPUs, every caller on the rest "
                             "(bench/harness/cpus.py)")
    args = parser.parse_args()
    if args.idle is None:
        args.idle = args.seconds
    scenario = Scenario(args.flood_threads, args.interval, args.idle, args.seconds, args.deadline, args.flood_times,
                        quiet_share=args.quiet_share, flood_rate=args.flood_rate,
                        quiet_rate=args.quiet_rate)
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts()}
    server_cpus, caller_cpus = cpus.split(cpus.available()) if args.split_cpus else (None, None)
    if server_cpus is not None:
        run["cpus"] = {"server": sorted(server_cpus), "callers": sorted(caller_cpus)}
    settings = {"WORKER_THREADS": args.threads, "PREDICTION_LOG_SAMPLE": 0.0}
    if args.max_in_flight_per_model is not None:
        settings["MAX_IN_FLIGHT_PER_MODEL"] = args.max_in_flight_per_model
    if args.max_in_flight is not None:
        settings["MAX_IN_FLIGHT"] = args.max_in_flight
    if args.low_priority_from_walks is not None:
        settings["LOW_PRIORITY_FROM_WALKS"] = args.low_priority_from_walks
    if args.low_priority_nice is not None:
        settings["LOW_PRIORITY_NICE"] = args.low_priority_nice
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp:
        root = Path(tmp)
        env = e2e.service_env(f"sqlite:///{root}/registry.db", root / "artifacts", ADMIN_TOKEN, **settings)
        e2e.migrate(env)
        with cpus.pinned(server_cpus):
            live = e2e.start(env, root, workers=args.workers, refresh_seconds=REFRESH_SECONDS)
        try:
            if caller_cpus is not None:
                cpus.pin(caller_cpus)  # every caller, and the flood's process, started from here from now on
            hot, quiet = serve_models(live, hot_trees=args.trees, hot_rows=args.rows)
            outcome = overload(live, hot, quiet, scenario)
            final = scrape(live.url)
        finally:
            live.stop()
    run["figures"] = figures(outcome, scenario, final)
    text = describe(run)
    print(text)
    report.save("overload", run, text, HERE / "results", latest="overload")


def figures(outcome, scenario: Scenario, final: dict) -> dict:
    """Each phase summed up, the hot model's refusals apart, and the shadow runs shed and run."""
    flood = outcome.hot_flood
    refused = [r for r in flood if r.status in (429, 503)]
    answered = [r for r in flood if r.status == 200]
    late = [r for r in (*flood, *outcome.quiet_flood) if r.finished - r.started > scenario.deadline]
    before, during = outcome.metrics["before"], outcome.metrics["flood"]
    compared = {"model": "quiet", "alias": "production", "version": "2", "outcome": "compared"}
    return {
        "scenario": asdict(scenario),
        "hot_alone": summary(outcome.hot_alone, scenario.idle),
        "hot_capacity": summary(outcome.hot_capacity, scenario.idle) if outcome.hot_capacity else None,
        "flood_rate_offered": round(outcome.flood_rate, 1) if outcome.flood_rate else None,
        "quiet_capacity": summary(outcome.quiet_capacity, scenario.idle) if outcome.quiet_capacity else None,
        "quiet_rate_offered": round(outcome.quiet_rate, 1),
        "quiet_before": summary(outcome.quiet_before, scenario.idle),
        "hot_flood": summary(flood, scenario.flood),
        "quiet_flood": summary(outcome.quiet_flood, scenario.flood),
        "quiet_after": summary(outcome.quiet_after, scenario.idle),
        "refusal_p99_ms": round(percentile(refused, 99), 2),
        "offered_per_answered": round(len(flood) / max(1, len(answered)), 1),
        "flood_seconds": round(max(r.finished for r in flood) - min(r.started for r in flood), 2) if flood else 0.0,
        "flood_callers_cpu_seconds": round(outcome.flood_cpu_seconds, 2),
        "server_cpu_seconds_during_flood": round(outcome.server_cpu_seconds, 2),
        "late_past_deadline": len(late),
        "late_past_deadline_max_ms": round(max((r.ms for r in late), default=0.0), 1),
        "quiet_p99_ratio": round(percentile(outcome.quiet_flood, 99)
                                 / max(percentile(outcome.quiet_before, 99), percentile(outcome.quiet_after, 99)), 2),
        "shadow_shed_during_flood": metric(during, "registry_shadow_shed_total", kind="shadow")
        - metric(before, "registry_shadow_shed_total", kind="shadow"),
        "shadow_compared_during_flood": metric(during, "registry_shadow_runs_total", **compared)
        - metric(before, "registry_shadow_runs_total", **compared),
        "shadow_compared_after_flood": metric(final, "registry_shadow_runs_total", **compared)
        - metric(during, "registry_shadow_runs_total", **compared),
    }


def _setting(given) -> str:
    return "the service's default" if given is None else str(given)


def describe(run: dict) -> str:
    """The run as Markdown."""
    f, o, facts, split = run["figures"], run["options"], run["machine"], run.get("cpus")
    server_cpus = len(split["server"]) if split else facts["nproc"]
    lines = [
        f"# Isolation under overload, {run['started_at']}", "",
        f"{o['workers']} workers of {o['threads']} threads; "
        f"`hot`: {o['trees']} trees × {o['rows']} rows a request; "
        f"`quiet`: logistic, 1 row a request, 100% shadow, {f['quiet_rate_offered']} requests a second"
        + (f" ({o['quiet_share']:g} of its capacity); " if o["quiet_share"] and not o["quiet_rate"] else "; ")
        + f"flood: {o['flood_threads']} callers, "
        + (f"open loop at {f['flood_rate_offered']} requests a second, " if o["flood_rate"]
           else f"open loop at {o['flood_times']:g}× hot's capacity ({f['flood_rate_offered']} requests a second), "
           if o["flood_times"] else "closed loop, ")
        + f"for {o['seconds']:g} s; X-Request-Timeout {o['deadline']:g} s. Machine: {facts['nproc']} CPUs, "
        f"load average at start {facts['loadavg_at_start'][0]:.1f}"
        + (f"; the server on CPUs {split['server']}, the callers on {split['callers']}." if split else "."), "",
        "| phase | requests | statuses | rps | p50 ms | p99 ms | max ms |", "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for phase in ("hot_alone", "hot_capacity", "quiet_capacity", "quiet_before", "hot_flood", "quiet_flood",
                  "quiet_after"):
        s = f[phase]
        if s is None:
            continue
        lines.append(f"| {phase} | {s['requests']} | {s['statuses']} | {s['rps']} | {s['p50_ms']} | {s['p99_ms']} | "
                     f"{s['max_ms']} |")
    lines += [
        "",
        f"- hot model: {f['offered_per_answered']}× its answers offered; refusals p99 {f['refusal_p99_ms']} ms "
        f"(by status: {f['hot_flood']['by_status']})",
        f"- quiet model: p99 during the flood ÷ idle p99 = {f['quiet_p99_ratio']}",
        f"- CPU during the flood ({f['flood_seconds']} s, on {server_cpus} CPUs): the server's workers "
        f"{f['server_cpu_seconds_during_flood']} s, the flood's callers {f['flood_callers_cpu_seconds']} s",
        f"- answered past their deadline: {f['late_past_deadline']} (the longest {f['late_past_deadline_max_ms']} ms)",
        f"- quiet's shadow runs: {f['shadow_shed_during_flood']:.0f} shed and {f['shadow_compared_during_flood']:.0f} "
        f"run during the flood, {f['shadow_compared_after_flood']:.0f} run after it",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
