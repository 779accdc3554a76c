"""Running another checkout's server (its own code, migrations and gunicorn.conf.py) with this
interpreter, so a benchmark can measure before and after side by side; nothing of it is imported."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.harness.server import free_port

BIN = Path(sys.executable).parent


def checkout_env(repo: Path, root: Path, *, workers: int, token: str, **extra) -> dict:
    """The environment of a server of ``repo`` on SQLite and local artifacts under ``root``; ``URL`` says where."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL=f"sqlite:///{root}/registry.db", ARTIFACT_ROOT=str(root / "artifacts"), ADMIN_TOKEN=token,
        PYTHONPATH=str(repo), BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(workers), ALIAS_REFRESH_SECONDS="1",
        URL=f"http://127.0.0.1:{port}",
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


def migrate_checkout(repo: Path, env: dict) -> None:
    """``flask db upgrade`` with the checkout's migrations."""
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=repo, env=env, check=True,
                   capture_output=True)


def start_checkout(repo: Path, env: dict, log: Path) -> subprocess.Popen:
    """Start the checkout's gunicorn and wait until ``/readyz`` answers 200."""
    with log.open("wb") as out:
        server = subprocess.Popen([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=repo, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{env['URL']}/readyz", timeout=5).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop_checkout(server)
    raise RuntimeError(f"gunicorn not ready:\n{log.read_text()[-3000:]}")


def stop_checkout(server: subprocess.Popen) -> None:
    """SIGTERM, then wait (killing it after 60 s)."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def commit_of(repo: Path) -> str:
    """The checkout's short commit id ("unknown" outside a git checkout)."""
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    return result.stdout.strip() or "unknown"
