"""Readiness probes and predictions while the object store hangs (its SeaweedFS stopped with SIGSTOP).

    .venv/bin/python -m bench.stalled_store                        # this checkout
    .venv/bin/python -m bench.stalled_store --repo /path/to/other  # another checkout, side by side

A server of ``--repo`` (2 workers × 4 threads, SQLite, artifacts in a SeaweedFS of its own) serves one
loaded model; then the store is stopped and ``--probes`` /readyz probes and ``--predictions``
predictions are sent at once. Prints how long the slowest of each took and what the probes said.
Figures, never pass/fail.
"""
from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import requests

from bench.harness import s3_server
from bench.harness.checkout import checkout_env, migrate_checkout, start_checkout, stop_checkout
from bench.harness.models import PROBE_ROW, scaled_sum
from bench.harness.models import upload as upload_model

HERE = Path(__file__).resolve().parent
TOKEN = "bench-stalled-store-token"


def main() -> None:
    """Start the store and the server, stall the store, print the figures."""
    args = _arguments()
    root = Path(tempfile.mkdtemp(prefix="stalled-store-"))
    with s3_server.running(root / "s3") as s3:
        s3.create_bucket("bench")
        env = checkout_env(Path(args.repo), root, workers=2, token=TOKEN, **s3.env("bench"))
        migrate_checkout(Path(args.repo), env)
        server = start_checkout(Path(args.repo), env, root / "gunicorn.log")
        try:
            _measure(env["URL"], s3, args)
        finally:
            stop_checkout(server)


def _measure(url: str, s3, args) -> None:
    live = SimpleNamespace(url=url, headers={"Authorization": f"Bearer {TOKEN}"})
    upload_model(live, "m", scaled_sum(1))
    requests.post(f"{url}/models/m/versions/1/promote", json={}, headers=live.headers, timeout=60)

    def predict():
        return requests.post(f"{url}/models/m/production/predict", json={"instances": [PROBE_ROW]}, timeout=300)

    def probe():
        return requests.get(f"{url}/readyz", timeout=300)

    for _ in range(8):  # loaded in every worker
        predict()
    print(f"store answering: a probe {_timed(probe)[0]:.3f} s, a prediction {_timed(predict)[0]:.3f} s")
    os.killpg(s3.process.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(args.probes + args.predictions) as pool:
            probes = [pool.submit(_timed, probe) for _ in range(args.probes)]
            predictions = [pool.submit(_timed, predict) for _ in range(args.predictions)]
            probes, predictions = [f.result() for f in probes], [f.result() for f in predictions]
        seconds, later = _timed(probe)
    finally:
        os.killpg(s3.process.pid, signal.SIGCONT)
    print(f"store stalled: {args.probes} probes at once, the slowest {max(p[0] for p in probes):.2f} s; "
          f"{args.predictions} predictions beside them, the slowest {max(p[0] for p in predictions):.2f} s "
          f"(statuses {sorted({p[1].status_code for p in probes + predictions})})")
    print(f"one more probe while stalled: {seconds:.3f} s, {later.json().get('problems')}")


def _timed(call) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = call()
    return time.monotonic() - started, response


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout to run the server from")
    parser.add_argument("--probes", type=int, default=16)
    parser.add_argument("--predictions", type=int, default=8)
    return parser.parse_args()


if __name__ == "__main__":
    main()
