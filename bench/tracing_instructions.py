"""What traces cost a gunicorn worker, in instructions: tracing off, on at 100 % and at 10 %, counted by callgrind.

    .venv/bin/python -m bench.tracing_instructions [--requests 500] [--rounds 2]

Requests per second on this shared two-core machine move by ±10 % between windows of the same code
(docs/operations.md, "Traces"), as much as the goal measures. Instructions do not: valgrind's callgrind
counts them whatever else the machine does. Each target is served by gunicorn (one worker, the repository's
settings, SQLite, the bench's logistic regression on ``production``) run under callgrind, twice: one server
answers a warm-up and then ``--warmup`` single-row predictions on the alias route over one kept-alive
connection, the other the warm-up and ``--warmup + --requests``; the difference between their workers'
instructions, divided by ``--requests``, is what one request costs the worker, everything in it included
(gunicorn's parsing, the app, the span export thread encoding and sending to a receiver in this process).
So is the work of the worker's background loops while the longer server runs on (tens of seconds under
callgrind): the alias watcher, the largest of them, polls once an hour here instead of once a second.
Prints each target's instructions a request, and off's ÷ on's and ÷ 10 %'s (the rps ratio they would give;
goal ≥ 0.90 at 100 %), and writes them to bench/results/. Figures only; nothing passes or fails.
"""
import argparse
import http.client
import json
import re
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from bench import models, report
from bench.harness import server
from bench.harness.netns import LOOPBACK, Place
from bench.harness.otlp_receiver import OtlpReceiver
from bench.harness.traffic import move

HERE = Path(__file__).resolve().parent
TOKEN = "bench-tracing-instructions-token"
MODEL = "logistic"
GOAL = 0.90
WARMUP = 50  # requests before the counted ones, in both servers of a pair: the first requests load and compile
# The alias watcher's poll (ALIAS_REFRESH_SECONDS): once a second, its work would be charged to the requests of
# the longer server of a pair, which runs tens of seconds longer under callgrind; a single worker sees its own
# promotion without it.
QUIET_LOOPS_SECONDS = 3600.0
# A gunicorn under callgrind starts some 50 times slower: two of them, side by side on a busy 2-core machine, took
# more than the harness's 180 s to answer /readyz
CALLGRIND_STARTUP_SECONDS = 900.0


def main() -> None:
    """Parse the options, count, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="the difference between a pair's two servers")
    parser.add_argument("--warmup", type=int, default=100, help="counted requests of the shorter server of a pair")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts()}
    with tempfile.TemporaryDirectory(prefix="bench-tracing-instructions-") as tmp, \
            OtlpReceiver(keep=False) as receiver:
        on = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "bench-tracing"}
        targets = {"off": {}, "on": on,
                   "on-10%": {**on, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                              "OTEL_TRACES_SAMPLER_ARG": "0.1"}}
        estimator = models.fit(MODEL)
        run["figures"] = {name: [] for name in targets}
        for number in range(args.rounds):
            for name, settings in targets.items():
                counts = per_request(Path(tmp) / f"{name.replace('%', '')}-{number}", settings, estimator, args)
                run["figures"][name].append(counts)
        run["spans"] = receiver.span_count
    text = describe(run)
    print(text)
    report.save("tracing-instructions", run, text, HERE / "results", latest="tracing-instructions")


def per_request(root: Path, settings: dict, estimator, args) -> float:
    """One pair of servers for a target, side by side: the worker's instructions per request."""
    lengths = (args.warmup, args.warmup + args.requests)
    envs = [_prepared(root / str(count), settings) for count in lengths]  # one after the other: Alembic's globals
    with ThreadPoolExecutor(2) as pool:
        short, long = pool.map(lambda env, count: _worker_instructions(env, estimator, count), envs, lengths)
    return (long - short) / args.requests


def _prepared(root: Path, settings: dict) -> dict:
    """A fresh database and artifact root under ``root``, migrated; the server's environment."""
    root.mkdir(parents=True)
    env = server.service_env(f"sqlite:///{root / 'registry.db'}", root / "artifacts", TOKEN,
                             PREDICTION_LOG_SAMPLE=0.01, INSTANCE_DIR=root / "instance", **settings)
    server.migrate(env)
    return env


def _worker_instructions(env: dict, estimator, count: int) -> int:
    """Serve ``WARMUP + count`` predictions from a gunicorn under callgrind; its worker's instructions."""
    root = Path(env["INSTANCE_DIR"]).parent
    counted = root / "callgrind.%p.out"
    place = Place(("valgrind", "--tool=callgrind", f"--callgrind-out-file={counted}"), LOOPBACK.address,
                  LOOPBACK.host_address)
    live = server.launch(env, root, workers=1, place=place, refresh_seconds=QUIET_LOOPS_SECONDS)
    try:
        server.wait_serving(live, CALLGRIND_STARTUP_SECONDS)
        (worker,) = psutil.Process(live.process.pid).children()
        move(live, "promote", MODEL, models.register(live, MODEL, estimator))
        X, _ = models.training_data()
        body = json.dumps({"instances": X[:1].round(6).tolist()}).encode()
        place_url = urlsplit(live.url)
        connection = http.client.HTTPConnection(place_url.hostname, place_url.port, timeout=600)
        for _ in range(WARMUP + count):
            connection.request("POST", f"/models/{MODEL}/production/predict", body,
                               {"Content-Type": "application/json"})
            reply = connection.getresponse()
            reply.read()
            if reply.status != 200:
                raise RuntimeError(f"a prediction answered {reply.status}")
        connection.close()
    finally:
        server.stop_all([live])
    summary = re.search(r"^summary: (\d+)$", (root / f"callgrind.{worker.pid}.out").read_text(), re.MULTILINE)
    return int(summary.group(1))


def describe(run: dict) -> str:
    """The figures as Markdown: each target's median instructions a request, and its ratio to off's."""
    median = {name: statistics.median(counts) for name, counts in run["figures"].items()}
    o = run["options"]
    lines = [f"# What traces cost a gunicorn worker, in instructions, {run['started_at']}", "",
             f"Single-row {MODEL} on the alias route, one gunicorn worker under callgrind; per request: the "
             f"difference between a server that answered {o['warmup']} and one that answered "
             f"{o['warmup'] + o['requests']} (after {WARMUP} more each), ÷ {o['requests']}; median of "
             f"{o['rounds']} pairs.", "",
             "| target | instructions a request (each pair) | median | added | off's ÷ this | goal |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, counts in run["figures"].items():
        pairs = ", ".join(f"{count:,.0f}" for count in counts)
        added = "" if name == "off" else f"+{median[name] - median['off']:,.0f}"
        ratio = "" if name == "off" else f"{median['off'] / median[name]:.3f}"
        goal = f"≥ {GOAL}" if name == "on" else ""
        lines.append(f"| {name} | {pairs} | {median[name]:,.0f} | {added} | {ratio} | {goal} |")
    lines += ["", f"Spans received by the receiver: {run['spans']:,}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
