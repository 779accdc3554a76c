"""What traces cost a prediction in CPU, in process: tracing off, on and on at 10 %, against a checkout without it.

    .venv/bin/python -m bench.harness.untraced /tmp/untraced   # this checkout with no tracing code
    .venv/bin/python -m bench.tracing_cpu --baseline /tmp/untraced [--requests 400] [--rounds 7] [--profile]

Each target is a child process of its checkout (``registry`` imported from there) that builds the app
on SQLite with the bench's logistic regression on ``production`` and, asked by this process, sends a
round of single-row predictions on the alias route through the app's WSGI callable (Flask's test
client: no sockets, no gunicorn), then waits until its spans were sent, and answers the CPU time
(``time.process_time``: every thread of the child, the export thread's included) per request. The
baseline runs untraced; this checkout off, on (every request sampled: no caller's ``traceparent``) and
on at 10 % (``parentbased_traceidratio``), its spans sent as OTLP/HTTP to a receiver in this process that
decodes and drops them. Targets take their rounds in turns, so drift
in the machine's load reaches all alike, and the minimum of the rounds is reported: CPU time moves
little with load, and only upwards. ``--profile`` then lists, per traced target, where its CPU goes
(cProfile on a CPU timer). Figures only; nothing passes or fails.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = "logistic"
MODES = {"off": None, "on": {}, "on-10%": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                                           "OTEL_TRACES_SAMPLER_ARG": "0.1"}}  # the settings of each mode


def main() -> None:
    """Start the targets, measure them in turns, print and write the figures to bench/results/."""
    from bench import report
    from bench.harness.checkout import commit_of
    from bench.harness.otlp_receiver import OtlpReceiver

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path,
                        help="a checkout without tracing code (bench.harness.untraced), measured off")
    parser.add_argument("--requests", type=int, default=400, help="per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    checkouts = {"this": HERE.parent} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "options": {**vars(args), "baseline": str(args.baseline)}, "machine": report.machine_facts(),
           "commits": {label: commit_of(path) for label, path in checkouts.items()}}
    with tempfile.TemporaryDirectory(prefix="bench-tracing-cpu-") as tmp, OtlpReceiver(keep=False) as receiver:
        children = {f"{label} {mode}": _child(path, Path(tmp) / f"{label}-{mode}", receiver.endpoint, MODES[mode])
                    for label, path in checkouts.items() for mode in (("off",) if label == "baseline" else MODES)}
        try:
            samples = {name: [] for name in children}
            for _ in range(args.rounds):
                for name, child in children.items():
                    samples[name].append(float(_ask(child, f"round {args.requests}")))
            profiles = {name: _ask(child, f"profile {args.requests}", until="END")
                        for name, child in children.items() if args.profile and " on" in name}
        finally:
            for child in children.values():
                child.stdin.close()
                child.wait(timeout=60)
        run["figures"] = {name: {"min_us": min(values), "rounds_us": values} for name, values in samples.items()}
        run["spans"] = {"received": receiver.span_count, "exports": receiver.requests}
    text = describe(run)
    print(text)
    for name, profile in profiles.items():
        print(f"\n## {name}: top by own CPU time\n\n{profile}")
    report.save("tracing-cpu", run, text, HERE / "results", latest="tracing-cpu")


def describe(run: dict) -> str:
    """The figures as Markdown: each target's CPU per request, and what tracing adds to its checkout's off."""
    figures, o = run["figures"], run["options"]
    lines = [f"# CPU of a traced prediction in process, {run['started_at']}", "",
             f"Single-row {MODEL} on the alias route through the WSGI callable, min of {o['rounds']} rounds of "
             f"{o['requests']} requests in turns; load {run['machine']['loadavg_at_start'][0]:.1f} at start; "
             f"commits {run['commits']}.", "",
             "| target | CPU per request | added to the baseline's | the baseline's ÷ this |",
             "| --- | --- | --- | --- |"]
    reference = figures.get("baseline off", figures["this off"])["min_us"]
    for name, found in figures.items():
        lines.append(f"| {name} | {found['min_us']:.1f} µs | {found['min_us'] - reference:+.1f} µs | "
                     f"{reference / found['min_us']:.3f} |")
    lines += ["", f"Spans received: {run['spans']['received']:,} in {run['spans']['exports']:,} exports."]
    return "\n".join(lines)


def _child(checkout: Path, root: Path, endpoint: str, sampler: dict | None) -> subprocess.Popen:
    """A child of ``checkout`` (its code first on the path) serving from ``root``, tracing to ``endpoint`` with
    ``sampler``'s settings (None: tracing off)."""
    root.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(PYTHONPATH=str(checkout), PYTHONDONTWRITEBYTECODE="1",
               **({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **sampler} if sampler is not None else {}))
    code = f"import runpy; runpy.run_path({str(Path(__file__))!r}, run_name='child')"
    child = subprocess.Popen([sys.executable, "-c", code, str(root)], cwd=checkout, env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    _ask(child, None)  # its "ready"
    return child


def _ask(child: subprocess.Popen, command: str | None, until: str | None = None) -> str:
    if command is not None:
        child.stdin.write(command + "\n")
        child.stdin.flush()
    if until is None:
        return child.stdout.readline().strip()
    lines = []
    while (line := child.stdout.readline()) and line.strip() != until:
        lines.append(line.rstrip("\n"))
    return "\n".join(lines)


def serve_rounds(root: Path) -> None:
    """The child: build the app under ``root``, then answer the parent's commands on standard input."""
    import cProfile
    import io
    import json
    import pstats
    import time

    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(root))
    from bench import models
    from bench.profile_predict import JSON, registry_client
    from registry import tracing

    X, _ = models.training_data()
    body = json.dumps({"instances": X[:1].round(6).tolist()}).encode()
    client = registry_client(root, MODEL, models.fit(MODEL))
    url = f"/models/{MODEL}/production/predict"

    def requests(count: int) -> None:
        for _ in range(count):
            client.post(url, data=body, headers=JSON)
        _flush(tracing)

    requests(200)
    print("ready", flush=True)
    for line in sys.stdin:
        command, count = line.split()
        if command == "round":
            started = time.process_time()
            requests(int(count))
            print((time.process_time() - started) / int(count) * 1e6, flush=True)
        else:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            requests(int(count))
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(40)
            print(out.getvalue() + "\nEND", flush=True)


def _flush(tracing) -> None:
    """Wait until the spans made so far were sent: so that their export's CPU falls in their round."""
    if hasattr(tracing, "flush"):
        tracing.flush()


if __name__ == "__main__":
    main()
elif __name__ == "child":
    serve_rounds(Path(sys.argv[1]))
