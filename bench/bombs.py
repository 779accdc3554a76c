"""Time to refuse each bomb and the peak memory of the worker that read it, on a real gunicorn.

    .venv/bin/python -m bench.bombs                                  # this checkout
    .venv/bin/python -m bench.bombs --repo /work/wt/base-artifacts   # another checkout (its own .venv)

The server is started from ``--repo`` exactly as the README runs it (migrations through the flask
CLI, then ``gunicorn -c gunicorn.conf.py wsgi:app``) with a fresh SQLite database, 2 workers and
its default settings unless ``--max-model-mb`` / ``--max-upload-mb`` are given. Before each upload every worker's peak
resident memory (VmHWM) is reset through /proc/<pid>/clear_refs, so each row's peak is that bomb's.
Figures, never pass/fail; on a shared machine times are noisy. Writes bench/results/bombs-<time>.json
and .md.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import joblib
import psutil
import requests
import skops.io
from sklearn.linear_model import LinearRegression

from bench import report
from bench.bomb_files import (
    MIB,
    empty_lists_pickle,
    many_arrays_bomb,
    one_array_bomb,
    skops_zip_bomb,
    wide_claim_linear,
)
from bench.harness.checkout import commit_of, stop_checkout

HERE = Path(__file__).resolve().parent
ADMIN_TOKEN = "bench-bombs-token"
EXPANDED = 2600 * MIB


def _small_model() -> LinearRegression:
    return LinearRegression().fit([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0.0, 1.0, 2.0])


BOMBS = {
    "zlib-one-array-2.6GB": lambda: one_array_bomb(EXPANDED, "zlib", checksummed=True),
    "gzip-many-arrays-2.6GB": lambda: many_arrays_bomb(EXPANDED, "gzip", checksummed=True),
    "bz2-many-arrays-2.6GB": lambda: many_arrays_bomb(EXPANDED, "bz2"),
    "xz-many-arrays-2.6GB": lambda: many_arrays_bomb(EXPANDED, "xz"),
    "30M-empty-lists": lambda: empty_lists_pickle(30_000_000),
    "skops-zip-2.6GB": lambda: skops_zip_bomb(skops.io.dumps(_small_model()), EXPANDED),
    "3M-features-claim": lambda: wide_claim_linear(3_000_000),  # a few hundred bytes saying n_features_in_
}


def main() -> None:
    """Start the server, upload each bomb, print and write the figures."""
    args = _arguments()
    repo = Path(args.repo).resolve()
    names = args.only.split(",") if args.only else list(BOMBS)
    started_at = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(prefix="bench-bombs-") as root:
        process, url = _start(repo, Path(root), args)
        try:
            rows = [_measure(process, url, name, BOMBS[name]()) for name in names]
        finally:
            stop_checkout(process)
    run = {
        "command": shlex.join([sys.executable, "-m", "bench.bombs", *sys.argv[1:]]),
        "started_at": started_at,
        "repo": str(repo),
        "commit": commit_of(repo),
        "loadavg": list(os.getloadavg()),
        "max_model_mb": args.max_model_mb,
        "max_upload_mb": args.max_upload_mb,
        "rows": rows,
    }
    _write(run)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout to run the server from")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-model-mb", type=int, default=None, help="MAX_MODEL_MB for the server")
    parser.add_argument("--max-upload-mb", type=int, default=None,
                        help="MAX_UPLOAD_MB for the server (MAX_MODEL_MB is never below it; default 512)")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(BOMBS)}")
    return parser.parse_args()


def _start(repo: Path, root: Path, args) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL=f"sqlite:///{root}/registry.db", ARTIFACT_ROOT=str(root / "artifacts"),
        ADMIN_TOKEN=ADMIN_TOKEN, PYTHONPATH=str(repo), BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(args.workers),
    )
    for name, value in (("MAX_MODEL_MB", args.max_model_mb), ("MAX_UPLOAD_MB", args.max_upload_mb)):
        if value:
            env[name] = str(value)
    venv = repo / ".venv" / "bin"
    subprocess.run([str(venv / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=repo, env=env, check=True,
                   capture_output=True)
    log = open(root / "gunicorn.log", "wb")
    process = subprocess.Popen([str(venv / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=repo, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        stop_checkout(process)
        raise RuntimeError(f"server did not start:\n{(root / 'gunicorn.log').read_text()[-3000:]}")
    buffer = io.BytesIO()
    joblib.dump(_small_model(), buffer)
    upload = _upload(url, "served", buffer.getvalue())
    assert upload.status_code == 201, upload.text
    return process, url


def _upload(url: str, name: str, data: bytes) -> requests.Response:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return requests.post(f"{url}/models/{name}/versions", files={"artifact": ("f.bin", data)}, headers=headers,
                         timeout=600)


def _measure(process: subprocess.Popen, url: str, name: str, data: bytes) -> dict:
    workers = [w.pid for w in psutil.Process(process.pid).children()]
    rss_before = {pid: _status_mb(pid, "VmRSS") for pid in workers}
    for pid in workers:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
    sampled = dict(rss_before)
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.perf_counter()
        upload = pool.submit(_upload, url, f"bomb-{name}", data)
        while not upload.done():  # a worker killed mid-read takes its VmHWM with it: sample RSS too
            for pid in workers:
                sampled[pid] = max(sampled[pid], _status_mb(pid, "VmRSS") or 0)
            time.sleep(0.1)
        response, seconds = upload.result(), time.perf_counter() - started
    peaks = {pid: max(sampled[pid], _status_mb(pid, "VmHWM") or 0) for pid in workers}
    worst = max(workers, key=lambda pid: peaks[pid] - rss_before[pid])
    lost = [pid for pid in workers if _status_mb(pid, "VmRSS") is None]
    served = requests.post(f"{url}/models/served/1/predict", json={"instances": [[1.0, 1.0]]}, timeout=120)
    row = {
        "bomb": name,
        "upload_mb": round(len(data) / MIB, 2),
        "status": response.status_code,
        "seconds": round(seconds, 2),
        "worker_peak_rss_mb": peaks[worst],
        "worker_rss_before_mb": rss_before[worst],
        "workers_lost": len(lost),
        "predict_after": served.status_code,
        "detail": _detail(response),
    }
    print(json.dumps(row), flush=True)
    return row


def _status_mb(pid: int, field: str) -> int | None:
    """A memory field of /proc/<pid>/status in MB; None once the process is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next((line for line in status if line.startswith(f"{field}:")), None)
    except FileNotFoundError:
        return None
    return int(line.split()[1]) // 1024 if line else None


def _detail(response: requests.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:160]
    except ValueError:
        return response.text[:160]


def _write(run: dict) -> None:
    lines = [
        f"# Bombs {run['started_at']}", "",
        f"Command: `{run['command']}`  ", f"Server: {run['repo']} at {run['commit']}, "
        f"MAX_MODEL_MB={run['max_model_mb'] or 'default'}, MAX_UPLOAD_MB={run['max_upload_mb'] or 'default'}; "
        "load average at end "
        f"{', '.join(f'{x:.2f}' for x in run['loadavg'])} (shared machine: times are noisy)", "",
        "| bomb | upload MB | status | seconds | worker peak RSS MB | worker RSS before MB | workers lost "
        "| predict after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {r['bomb']} | {r['upload_mb']} | {r['status']} | {r['seconds']} | {r['worker_peak_rss_mb']} | "
          f"{r['worker_rss_before_mb']} | {r['workers_lost']} | {r['predict_after']} |" for r in run["rows"]],
    ]
    text = "\n".join(lines)
    print(text)
    report.save("bombs", run, text, HERE / "results")


if __name__ == "__main__":
    main()
