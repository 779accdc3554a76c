"""What traces cost the predict route: tracing off, and on, against the same code without tracing.

Four servers (each gunicorn with the repository's settings and two workers, SQLite, the bench's
logistic regression on ``production``): ``baseline``, the ``--baseline`` checkout (this one with no tracing
code on the prediction path: ``bench/harness/untraced.py`` makes it); ``off``, this checkout with no
``OTEL_*`` variable; ``on``, this checkout sending every request's spans (100 % sampling: the default
parent-based always-on sampler, and no caller's ``traceparent``) through the SDK's batch processor and
OTLP/HTTP exporter to a receiver in this process that decodes and drops them; and ``on-10%``
(``OTEL_TRACES_SAMPLER=parentbased_traceidratio``, ``OTEL_TRACES_SAMPLER_ARG=0.1``). Single-row bodies
on the alias route, c=8, wrk's closed loop; the targets are measured in turns, ``--rounds`` times, each
round starting one target further on, so drift in the machine's load reaches all of them alike.
With ``--split-cpus`` the servers run on the first half of the machine's CPUs, and wrk and the receiver on the
rest (``bench/harness/cpus.py``): a deployment's callers and collector run elsewhere, and sharing the cores
charges their work (the receiver's decoding grows with the spans sent) to the server's rps.
``--traced-baseline`` adds a fifth server, ``on, before``: another checkout traced as ``on`` is, so that a change
to the recorder is measured against the code before it in the same run.

    .venv/bin/python -m bench.harness.untraced /tmp/untraced
    .venv/bin/python -m bench.tracing --baseline /tmp/untraced [--split-cpus] [--traced-baseline /tmp/before]

Prints requests per second, p99 and server CPU per request of each target, the ratios that the goals
name (off ÷ baseline ≥ 0.98, on-10% ÷ baseline ≥ 0.95), and the spans the receiver got per request, and
writes them to bench/results/. Figures only; nothing passes or fails.
"""
import argparse
import statistics
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

from bench import models, predict, report
from bench.harness import cpus
from bench.harness.checkout import checkout_env, commit_of, migrate_checkout, start_checkout, stop_checkout
from bench.harness.otlp_receiver import OtlpReceiver
from bench.harness.traffic import move

HERE = Path(__file__).resolve().parent
TOKEN = "bench-tracing-token"
WORKERS = 2
MODEL = "logistic"
LOPSIDED = 0.7  # the busiest worker's share of the CPU beyond which a window is measured again (bench.floor)
TRIES = 4
GOALS = {"off": 0.98, "on-10%": 0.95}  # rps ÷ baseline's


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True,
                        help="this checkout without tracing code (bench.harness.untraced)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--traced-baseline", type=Path,
                        help="another checkout to measure traced at 100 %% alongside (``on, before``: ÷ off)")
    parser.add_argument("--split-cpus", action="store_true",
                        help="servers on the first half of the CPUs, wrk and the receiver on the rest")
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "options": {**vars(args), "baseline": str(args.baseline), "traced_baseline": str(args.traced_baseline)},
           "baseline_commit": commit_of(args.baseline), "machine": report.machine_facts()}
    server_cpus, caller_cpus = cpus.split(cpus.available()) if args.split_cpus else (None, None)
    if caller_cpus is not None:
        run["cpus"] = {"server": sorted(server_cpus), "callers": sorted(caller_cpus)}
        cpus.pin(caller_cpus)  # the receiver's threads and every wrk, started from here from now on
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp, OtlpReceiver(keep=False) as receiver:
        root = Path(tmp)
        body = models.write_bodies(root)[1]
        estimator = models.fit(MODEL)
        servers = {}
        try:
            for name, (repo, settings) in targets(args.baseline.resolve(), receiver.endpoint,
                                                  args.traced_baseline and args.traced_baseline.resolve()).items():
                with cpus.pinned(server_cpus):
                    servers[name] = _serve(repo, root / name, settings, estimator)
            # one worker's share says nothing on fewer CPUs than workers: whichever runs, the CPUs are busy
            lopsided = LOPSIDED if len(server_cpus or cpus.available()) >= WORKERS else 1.0
            run["figures"] = measure(servers, body, args, lopsided)
        finally:
            for server, _ in servers.values():
                stop_checkout(server)
        run["spans"] = {"received": receiver.span_count, "exports": receiver.requests}
    text = describe(run)
    print(text)
    report.save("tracing", run, text, HERE / "results", latest="tracing")


def targets(baseline: Path, endpoint: str, traced_baseline: Path | None = None) -> dict[str, tuple[Path, dict]]:
    """Each target's checkout and the settings it runs with (``on, before``: ``traced_baseline`` traced, if given)."""
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "bench-tracing"}
    untouched = {"PYTHONDONTWRITEBYTECODE": "1"}  # nothing written into another checkout
    return {
        "baseline": (baseline, untouched),
        "off": (HERE.parent, {}),
        "on": (HERE.parent, on),
        "on-10%": (HERE.parent, {**on, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                                  "OTEL_TRACES_SAMPLER_ARG": "0.1"}),
        **({"on, before": (traced_baseline, {**untouched, **on})} if traced_baseline else {}),
    }


def _serve(repo: Path, root: Path, settings: dict, estimator):
    """``repo``'s server on a fresh database under ``root``, serving ``estimator`` on production; (process, url)."""
    root.mkdir()
    env = checkout_env(repo, root, workers=WORKERS, token=TOKEN, INSTANCE_DIR=root / "instance",
                       ARTIFACT_CACHE_DIR=root / "artifact-cache", **settings)
    for name in [name for name in env if name.startswith("OTEL_") and name not in settings]:
        del env[name]  # only what the target names
    migrate_checkout(repo, env)
    server = start_checkout(repo, env, root / "gunicorn.log")
    live = SimpleNamespace(url=env["URL"], headers={"Authorization": f"Bearer {TOKEN}"})
    move(live, "promote", MODEL, models.register(live, MODEL, estimator))
    return server, f"{env['URL']}/models/{MODEL}/production/predict"


def measure(servers: dict, body: Path, args, lopsided: float = LOPSIDED) -> dict[str, list[dict]]:
    """Every target's rps and server CPU per request in every round (after one unmeasured second each), the
    targets' order turned by one each round so that none always follows the same one; a window in which one
    worker did more than ``lopsided`` of the work is measured again (as bench.floor does)."""
    found: dict[str, list[dict]] = {name: [] for name in servers}
    names = list(servers)
    for number in range(args.rounds):
        for name in names[number % len(names):] + names[:number % len(names)]:  # each round starts one further on
            server, url = servers[name]
            for tries in range(1, TRIES + 1):
                figures = predict.measure(server.pid, url, body, args.concurrency, args.seconds, warmup=1)
                if figures["non_2xx"] or figures["socket_errors"]:
                    raise RuntimeError(f"{name}: {figures['non_2xx']} failed answers, "
                                       f"{figures['socket_errors']} socket errors")
                if figures["busiest_worker_share"] <= lopsided:
                    break
            found[name].append({"rps": figures["rps"], "cpu_ms": figures["server_cpu_ms_per_request"],
                                "p99_ms": figures["p99_ms"], "busiest_worker_share": figures["busiest_worker_share"],
                                "requests": figures["requests"], "tries": tries})
    return found


def describe(run: dict) -> str:
    """The figures as Markdown: median rps and CPU per request of each target, and the ratios of the goals."""
    rps = {name: statistics.median(r["rps"] for r in rounds) for name, rounds in run["figures"].items()}
    cpu = {name: statistics.median(r["cpu_ms"] for r in rounds) for name, rounds in run["figures"].items()}
    p99 = {name: statistics.median(r["p99_ms"] for r in rounds) for name, rounds in run["figures"].items()}
    measured = {name: sum(r["requests"] for r in run["figures"][name]) for name in ("on", "on-10%")}
    o, machine, split = run["options"], run["machine"], run.get("cpus")
    lines = [f"# What traces cost the predict route, {run['started_at']}", "",
             f"Single-row {MODEL} on the alias route, c={o['concurrency']}, {WORKERS} gthread workers, medians of "
             f"{o['rounds']} windows of {o['seconds']} s in turns; baseline: {o['baseline']} at "
             f"{run['baseline_commit']}; {machine['nproc']} CPUs, load {machine['loadavg_at_start'][0]:.1f} at start"
             + (f"; the servers on CPUs {split['server']}, wrk and the receiver on {split['callers']}." if split
                else "."), "",
             "| target | rps | p99 | server CPU per request | rps ÷ baseline's | baseline's CPU ÷ this | goal |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in run["figures"]:
        goal = GOALS.get(name)
        ratio = "" if name == "baseline" else f"{rps[name] / rps['baseline']:.3f}"
        cpu_ratio = "" if name == "baseline" else f"{cpu['baseline'] / cpu[name]:.3f}"
        lines.append(f"| {name} | {rps[name]:.0f} | {p99[name]:.2f} ms | {cpu[name]:.3f} ms | {ratio} | {cpu_ratio} | "
                     f"{f'≥ {goal}' if goal else ''} |")
    lines += ["", f"Spans received and dropped by the receiver: {run['spans']['received']:,} in "
                  f"{run['spans']['exports']:,} exports, for {measured['on']:,} measured requests of `on` and "
                  f"{measured['on-10%']:,} of `on-10%` (and a warm-up second before each window)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
