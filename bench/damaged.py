"""Idle cost of a damaged aliased artifact: CPU seconds and log lines per 10 s of a real gunicorn.

Two models are uploaded and promoted, the server is stopped, the stored file of one is replaced by
``--mb`` MB that no longer match its sha256 (a damaged artifact of that size costs the same to
detect: the whole file is read and hashed), and the server is started again. Then, with no traffic,
the CPU time of the master and its workers and the lines added to its log are measured over
consecutive windows; last, the latency of the healthy model.

    .venv/bin/python -m bench.damaged                           # this checkout
    .venv/bin/python -m bench.damaged --repo /work/wt/base-faults --label before

``--repo`` runs another checkout's server (its own code, migrations and gunicorn.conf.py) with this
interpreter; nothing of it is imported here. Timings are noisy on a shared machine; CPU seconds much less.
"""
import argparse
import io
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import requests
from sklearn.linear_model import LinearRegression

from bench.harness.checkout import checkout_env, commit_of, migrate_checkout, start_checkout, stop_checkout
from bench.harness.processes import tree_cpu_seconds

HERE = Path(__file__).resolve().parent
TOKEN = "bench-damaged-token"
ROW = [1.0, 1.0, 1.0]


def main() -> None:
    """Parse the options, run the measurement, print it and write it to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="checkout whose server is measured")
    parser.add_argument("--label", default=None, help="name of the result (default: the checkout's commit)")
    parser.add_argument("--mb", type=int, default=300, help="size of the damaged artifact")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--windows", type=int, default=4, help="consecutive idle windows measured")
    parser.add_argument("--window-seconds", type=float, default=10.0)
    args = parser.parse_args()
    label = args.label or commit_of(args.repo)
    with tempfile.TemporaryDirectory(prefix="bench-damaged-") as tmp:
        result = measure(args.repo.resolve(), Path(tmp), args)
    result.update(label=label, repo=str(args.repo), mb=args.mb, workers=args.workers)
    report(result)
    out = HERE / "results" / f"damaged-{label}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out.relative_to(HERE.parent)}")


def measure(repo: Path, root: Path, args) -> dict:
    """Seed, damage, restart, then measure idle windows and the healthy model's latency."""
    env = checkout_env(repo, root, workers=args.workers, token=TOKEN)
    migrate_checkout(repo, env)
    server = start_checkout(repo, env, root / "seed.log")
    try:
        sha = _seed(env["URL"])
    finally:
        stop_checkout(server)
    (root / "artifacts" / "sha256" / sha[:2] / sha).write_bytes(b"\0" * args.mb * 1024 * 1024)
    log = root / "damaged.log"
    server = start_checkout(repo, env, log)
    try:
        windows = [_window(server, log, args.window_seconds) for _ in range(args.windows)]
        latency = _latency(env["URL"])
    finally:
        stop_checkout(server)
    return {"window_seconds": args.window_seconds, "windows": windows, "healthy_latency_ms": latency}


def report(result: dict) -> None:
    """Print the figures, per window and per 10 s."""
    per10 = 10.0 / result["window_seconds"]
    print(f"{result['label']}: {result['workers']} workers, damaged aliased artifact of {result['mb']} MB, idle")
    for n, window in enumerate(result["windows"], 1):
        print(f"  window {n}: {window['cpu_seconds'] * per10:6.2f} CPU-s per 10 s, "
              f"{window['log_lines'] * per10:6.0f} log lines per 10 s")
    windows = result["windows"]
    print(f"  mean over {len(windows) * result['window_seconds']:.0f} s: "
          f"{statistics.mean(w['cpu_seconds'] for w in windows) * per10:6.2f} CPU-s per 10 s, "
          f"{statistics.mean(w['log_lines'] for w in windows) * per10:6.0f} log lines per 10 s")
    latency = result["healthy_latency_ms"]
    print(f"  healthy model, sequential predicts: p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms")


def _seed(url: str) -> str:
    """Upload and promote ``damaged`` and ``healthy``; the sha256 of ``damaged`` v1."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    shas = {}
    for name, factor in (("damaged", 1.0), ("healthy", 2.0)):
        X = np.random.default_rng(0).normal(size=(30, len(ROW)))
        buffer = io.BytesIO()
        joblib.dump(LinearRegression().fit(X, factor * X.sum(axis=1)), buffer)
        uploaded = requests.post(f"{url}/models/{name}/versions", files={"artifact": ("m.joblib", buffer.getvalue())},
                                 headers=headers, timeout=60)
        uploaded.raise_for_status()
        shas[name] = uploaded.json()["sha256"]
        requests.post(f"{url}/models/{name}/versions/1/promote", json={}, headers=headers, timeout=60).raise_for_status()
    return shas["damaged"]


def _window(server: subprocess.Popen, log: Path, seconds: float) -> dict:
    cpu, lines = tree_cpu_seconds(server.pid), _lines(log)
    time.sleep(seconds)
    return {"cpu_seconds": round(tree_cpu_seconds(server.pid) - cpu, 3), "log_lines": _lines(log) - lines}


def _latency(url: str, count: int = 200) -> dict:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        requests.post(f"{url}/models/healthy/predict", json={"instances": [ROW]}, timeout=60).raise_for_status()
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return {"p50": round(statistics.median(took), 2), "p99": round(took[int(0.99 * (count - 1))], 2)}


def _lines(log: Path) -> int:
    with log.open("rb") as f:
        return sum(1 for _ in f)


if __name__ == "__main__":
    main()
