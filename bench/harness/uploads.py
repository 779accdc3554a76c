"""A real gunicorn of a checkout for upload benchmarks, and an upload measured on it: its time and the
peak resident memory of the worker that read it (VmHWM reset through /proc/<pid>/clear_refs first, and
RSS sampled meanwhile, since a worker killed mid-read takes its VmHWM with it). Used by bench.bombs and
bench.boosted_upload."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import psutil
import requests
from sklearn.linear_model import LinearRegression

from bench.harness.checkout import stop_checkout

ADMIN_TOKEN = "bench-uploads-token"
MIB = 1024 * 1024


def small_model() -> LinearRegression:
    """A two-feature regression, served beside the uploads to show the server still answers."""
    return LinearRegression().fit([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0.0, 1.0, 2.0])


def start_server(repo: Path, root: Path, *, workers: int, settings: dict) -> tuple[subprocess.Popen, str]:
    """``repo``'s server as the README runs it (migrations, then gunicorn) on a fresh SQLite database under
    ``root`` with ``settings`` added to its environment, model ``served`` uploaded; the process and its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL=f"sqlite:///{root}/registry.db", ARTIFACT_ROOT=str(root / "artifacts"),
        ADMIN_TOKEN=ADMIN_TOKEN, PYTHONPATH=str(repo), BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(workers),
    )
    env.update({name: str(value) for name, value in settings.items() if value})
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
    joblib.dump(small_model(), buffer)
    uploaded = upload(url, "served", buffer.getvalue())
    assert uploaded.status_code == 201, uploaded.text
    return process, url


def upload(url: str, name: str, data: bytes, filename: str = "f.bin") -> requests.Response:
    """``data`` uploaded as a new version of ``name``."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return requests.post(f"{url}/models/{name}/versions", files={"artifact": (filename, data)}, headers=headers,
                         timeout=600)


def measured(process: subprocess.Popen, call) -> tuple[object, float, int, int, int]:
    """``call()`` timed while the workers' memory is watched: (its result, seconds, the peak RSS MB of the
    worker whose peak grew most, that worker's RSS MB before, workers lost meanwhile)."""
    workers = [w.pid for w in psutil.Process(process.pid).children()]
    rss_before = {pid: status_mb(pid, "VmRSS") for pid in workers}
    for pid in workers:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
    sampled = dict(rss_before)
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.perf_counter()
        running = pool.submit(call)
        while not running.done():
            for pid in workers:
                sampled[pid] = max(sampled[pid], status_mb(pid, "VmRSS") or 0)
            time.sleep(0.05)
        result, seconds = running.result(), time.perf_counter() - started
    peaks = {pid: max(sampled[pid], status_mb(pid, "VmHWM") or 0) for pid in workers}
    worst = max(workers, key=lambda pid: peaks[pid] - rss_before[pid])
    lost = [pid for pid in workers if status_mb(pid, "VmRSS") is None]
    return result, seconds, peaks[worst], rss_before[worst], len(lost)


def measure_upload(process: subprocess.Popen, url: str, name: str, data: bytes, filename: str = "f.bin") -> dict:
    """Upload ``data`` as model ``name`` and measure it; the figures, printed as one JSON line too."""
    response, seconds, peak, before, lost = measured(process, lambda: upload(url, name, data, filename))
    served = requests.post(f"{url}/models/served/1/predict", json={"instances": [[1.0, 1.0]]}, timeout=120)
    row = {
        "name": name,
        "upload_mb": round(len(data) / MIB, 2),
        "status": response.status_code,
        "seconds": round(seconds, 2),
        "worker_peak_rss_mb": peak,
        "worker_rss_before_mb": before,
        "workers_lost": lost,
        "predict_after": served.status_code,
        "detail": detail(response),
    }
    print(json.dumps(row), flush=True)
    return row


def status_mb(pid: int, field: str) -> int | None:
    """A memory field of /proc/<pid>/status in MB; None once the process is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next((line for line in status if line.startswith(f"{field}:")), None)
    except FileNotFoundError:
        return None
    return int(line.split()[1]) // 1024 if line else None


def detail(response: requests.Response) -> str:
    """The problem's detail (or the body's start) of an answer."""
    try:
        return str(response.json().get("detail", ""))[:160]
    except ValueError:
        return response.text[:160]
