"""How close the predict route comes to the framework's floor: Flask and the WSGI server doing nothing else.

The floor is ``/floor/predict`` of the baseline app (``bench/baseline_app.py``): it parses the same
JSON body and answers a constant. The registry serves a logistic regression, a 100-tree random
forest and a 100-tree depth-6 XGBoost booster uploaded as its JSON file (``bench/models.py``; the
booster where XGBoost is installed) on ``production``. Both apps run under each server of
``--servers`` (by default gunicorn's gthread workers and granian's WSGI workers, ``bench/granian_serve.py``),
with the repository's settings: two workers of WORKER_THREADS threads. Single-row bodies, c=8, wrk's
closed loop; the targets are measured in turns, each under every server back to back, ``--rounds``
times, so drift in the machine's load reaches all of them alike.

The registry runs on a fresh SQLite file, or with ``--database postgresql`` on a fresh database that
the bench creates on ``TEST_POSTGRES_URL`` (the local server by default), migrates as the end-to-end
tests do, and drops after. ``--in-container`` (gunicorn only) runs both apps in the service's image,
built as the end-to-end tests build it, each in a container of its own with its port published on
loopback, so both pay the same container networking (``bench/contained.py``): the registry by the
image's own entrypoint and command, the floor app by the same image with this checkout's ``bench/``
mounted read-only and the same gunicorn command as on the host. Same two workers, same threads, same
wrk load. With both options, the registry's container reaches the host's PostgreSQL (which listens on
loopback only) through a TCP proxy in the bench's process, on podman's bridge.

    .venv/bin/python -m bench.floor [--servers gunicorn granian] [--database postgresql] [--in-container]

Prints requests per second, p99, server CPU and its threads' waits (voluntary context switches) per
request of each target under each server, each model's ratio to its server's floor (goals: logistic
≥ 0.85, forest and XGBoost ≥ 0.8) and each server's ratio to the first, and writes them to
bench/results/. Figures only; nothing passes or fails. Either server's workers keep the keep-alive
connections they accepted, so now and then one of the two gets most of wrk's eight and the rps halves:
such a window is measured again, and the report says how many were.
"""
import argparse
import os
import statistics
import tempfile
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from bench import contained, models, predict, report, servers
from bench.harness.databases import postgres_database
from bench.harness.server import SERVERS
from bench.harness.traffic import move

HERE = Path(__file__).resolve().parent
GOALS = {"logistic": 0.85, "forest": 0.8, "xgboost": 0.8}
LOPSIDED = 0.7  # the busiest of the two workers' share of their CPU beyond which a window is measured again
TRIES = 4
DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--servers", nargs="+", choices=list(SERVERS), default=list(SERVERS),
                        help="the WSGI servers to run both apps under, side by side (a column each)")
    parser.add_argument("--granian-threads", type=int,
                        help="granian's Python threads per worker (default: WORKER_THREADS, gunicorn's)")
    parser.add_argument("--worker-class", choices=["gthread", "sync"], default="gthread",
                        help="gunicorn's worker for both apps (gthread keeps connections alive; sync does not)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite",
                        help="the registry's database: a fresh SQLite file, or a fresh database on TEST_POSTGRES_URL")
    parser.add_argument("--in-container", action="store_true",
                        help="both apps in the service's container image (built as the e2e tests build it)")
    args = parser.parse_args()
    if args.in_container and args.servers != ["gunicorn"]:
        parser.error("--in-container runs the image's gunicorn: give --servers gunicorn")
    if args.worker_class != "gthread":
        os.environ["GUNICORN_CMD_ARGS"] = f"--worker-class {args.worker_class}"  # over gunicorn.conf.py's
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts()}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp, ExitStack() as running:
        root = Path(tmp)
        if args.in_container:
            contained.build_image()
        body = models.write_bodies(root)[1]
        fitted = models.fit_models()
        booster = models.xgboost_file()
        targets: dict[str, dict[str, tuple]] = {"floor": {}}
        for server in args.servers:
            (root / server).mkdir()
            settings = _settings(server, args)
            database = running.enter_context(postgres_database()) if args.database == "postgresql" else None
            if args.in_container:
                baseline = contained.start_floor(**settings)  # first: its container brings podman's bridge up
                running.callback(baseline.stop)
                if database:
                    database = running.enter_context(contained.reachable(database))
                registry = contained.start_registry(database, **settings)
                running.callback(registry.stop)
            else:
                registry = servers.start_registry(root / server, server, database_url=database, **settings)
                running.callback(registry.stop)
                baseline = servers.start_baseline(root / server, {}, server, **settings)
                running.callback(baseline.stop)
            targets["floor"][server] = (baseline, f"{baseline.url}/floor/predict")
            for kind, estimator in fitted.items():
                move(registry, "promote", kind, models.register(registry, kind, estimator))
                targets.setdefault(kind, {})[server] = (registry, f"{registry.url}/models/{kind}/production/predict")
            if booster is not None:
                move(registry, "promote", "xgboost", models.register_file(registry, "xgboost", "model.json", booster))
                targets.setdefault("xgboost", {})[server] = (registry, f"{registry.url}/models/xgboost/production/predict")
        run["figures"] = measure(targets, body, args)
    text = describe(run)
    print(text)
    report.save("floor", run, text, HERE / "results", latest="floor")


def _settings(server: str, args) -> dict:
    """The environment ``server`` runs both apps with beyond the repository's defaults."""
    if server == "granian" and args.granian_threads:
        return {"WORKER_THREADS": args.granian_threads}
    return {}


def measure(targets: dict[str, dict[str, tuple]], body: Path, args) -> dict[str, dict[str, list[dict]]]:
    """Every target's figures under every server in every round (after one unmeasured second each):
    requests per second, p99 latency, the CPU its server (master and workers) spent per request, which
    the machine's other load moves far less than throughput, and the load average as it began. The
    servers take their turns on each target back to back, so both see the same conditions.

    A window in which one worker did more than ``LOPSIDED`` of the work is measured again (up to
    ``TRIES`` times): the server had given it most of wrk's connections, which keep-alive then holds
    there, and such a window measures that draw, not the app (it halves either server's rps)."""
    found: dict[str, dict[str, list[dict]]] = {name: {server: [] for server in by_server}
                                               for name, by_server in targets.items()}
    for _ in range(args.rounds):
        for name, by_server in targets.items():
            for server, (process, url) in by_server.items():
                for tries in range(1, TRIES + 1):
                    load = os.getloadavg()[0]
                    figures = predict.measure(process.process.pid, url, body, args.concurrency, args.seconds, warmup=1)
                    if figures["non_2xx"] or figures["socket_errors"]:
                        raise RuntimeError(f"{name} under {server}: {figures['non_2xx']} failed answers, "
                                           f"{figures['socket_errors']} socket errors")
                    if figures["busiest_worker_share"] <= LOPSIDED:
                        break
                found[name][server].append({
                    "rps": figures["rps"], "p99_ms": figures["p99_ms"], "cpu_ms": figures["server_cpu_ms_per_request"],
                    "waits": figures["server_waits_per_request"],
                    "busiest_worker_share": figures["busiest_worker_share"], "tries": tries, "load": load})
    return found


def describe(run: dict) -> str:
    """The figures as Markdown: under each server, median requests per second, p99, server CPU and its threads'
    waits per request, and each model's ratio to that server's floor by rps; then each server's ratio to the
    first."""
    o = run["options"]
    chosen = o["servers"]
    median = {(name, server, key): statistics.median(r[key] for r in rounds)
              for name, by_server in run["figures"].items() for server, rounds in by_server.items()
              for key in ("rps", "p99_ms", "cpu_ms", "waits")}
    loads = [r["load"] for by_server in run["figures"].values() for rounds in by_server.values() for r in rounds]
    lines = [f"# Predict route vs the floor, {run['started_at']}", "",
             f"Single row, alias route, c={o['concurrency']}, {servers.WORKERS} workers of "
             f"{', '.join(_described(server, o) for server in chosen)}, the registry on {DATABASES[o['database']]}"
             f"{', both apps in the service image (podman)' if o['in_container'] else ''}; medians of {o['rounds']} windows of "
             f"{o['seconds']} s, the servers in turns on each target ({_redone(run)} measured again: one worker "
             f"had over {LOPSIDED:.0%} of the work); 1-minute load average {min(loads):.2f}–{max(loads):.2f}.", "",
             "| target | " + " | ".join(f"{s}: rps | ÷ floor | p99 | CPU per request | waits per request" for s in chosen)
             + " | goal |",
             "| --- |" + " --- | --- | --- | --- | --- |" * len(chosen) + " --- |"]
    for name in run["figures"]:
        label = "floor (JSON parsed, a constant answered)" if name == "floor" else f"registry, {name}"
        cells = []
        for server in chosen:
            rps = median[(name, server, "rps")]
            cells.append(f"{rps:.0f} | {rps / median[('floor', server, 'rps')]:.2f} | "
                         f"{median[(name, server, 'p99_ms')]:.2f} ms | {median[(name, server, 'cpu_ms')]:.3f} ms | "
                         f"{median[(name, server, 'waits')]:.2f}")
        goal = f"≥ {GOALS[name]}" if name in GOALS else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {goal} |")
    for server in chosen[1:]:
        lines += ["", f"{server} ÷ {chosen[0]}, median of the rounds' ratios (each round's windows back to back):", "",
                  "| target | rps | p99 |", "| --- | --- | --- |"]
        for name, by_server in run["figures"].items():
            pairs = list(zip(by_server[server], by_server[chosen[0]]))
            rps = statistics.median(a["rps"] / b["rps"] for a, b in pairs)
            p99 = statistics.median(a["p99_ms"] / b["p99_ms"] for a, b in pairs)
            lines.append(f"| {name} | {rps:.2f} | {p99:.2f} |")
    return "\n".join(lines)


def _described(server: str, options: dict) -> str:
    if server == "gunicorn":
        return f"gunicorn {options['worker_class']}"
    threads = options.get("granian_threads")
    return f"{server} WSGI" + (f" ({threads} threads each)" if threads else "")


def _redone(run: dict) -> int:
    return sum(r.get("tries", 1) - 1 for by_server in run["figures"].values()
               for rounds in by_server.values() for r in rounds)


if __name__ == "__main__":
    main()
