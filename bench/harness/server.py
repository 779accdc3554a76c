"""Start the real service — migrations through the CLI, then gunicorn (or granian, for the bench that
compares them: ``bench/granian_serve.py``) with several workers."""
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
from flask_migrate import upgrade

from api import create_app
from bench.harness.netns import LOOPBACK, Place
from config import BASE_DIR, load_with
from registry.db import db

BIN = Path(sys.executable).parent
# Generous: on a shared two-core machine importing the app alone can take a minute.
STARTUP_TIMEOUT_SECONDS = 180
# The command of each server the service can run under, from the repository's root.
SERVERS = {
    "gunicorn": [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
    "granian": [sys.executable, "-m", "bench.granian_serve", "wsgi:app"],
}


@dataclass
class LiveRegistry:
    """A running gunicorn: where it listens, its admin token and the env to call the CLI with."""

    url: str
    admin_token: str
    env: dict
    process: subprocess.Popen
    log_path: Path
    workers: int
    refresh_seconds: float
    headers: dict = field(init=False)

    def __post_init__(self):
        self.headers = {"Authorization": f"Bearer {self.admin_token}"}

    def stop(self) -> None:
        """Shut gunicorn down gracefully and wait for it."""
        stop_all([self])


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nobody listens on right now.

    Every socket stays bound until all are picked: asked one at a time, the kernel may hand the same
    port out twice, and a server given it twice exits at start.
    """
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def http_ports(env: dict, count: int) -> list[int]:
    """``count`` free ports for servers started with ``env``, none of them the gRPC port it names: ports
    picked apart may be handed out again, and a server binds its own only once its models are loaded."""
    named = {int(env["GRPC_BIND"].rsplit(":", 1)[1])} if env.get("GRPC_BIND") else set()
    return [port for port in free_ports(count + len(named)) if port not in named][:count]


def service_env(database_url: str, artifact_root: Path, admin_token: str, **extra) -> dict:
    """The environment the service (and the flask CLI) run with."""
    env = {k: v for k, v in os.environ.items() if k not in {"PROMETHEUS_MULTIPROC_DIR"}}
    env.update(
        DATABASE_URL=database_url,
        ARTIFACT_ROOT=str(artifact_root),
        ADMIN_TOKEN=admin_token,
        REGISTRY_TOKEN=admin_token,
        PYTHONPATH=str(BASE_DIR),
    )
    if "://" not in str(artifact_root):  # a local store: this run's node cache beside it, not in the repo
        env["ARTIFACT_CACHE_DIR"] = str(Path(artifact_root).parent / "artifact-cache")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def migrate(env: dict) -> None:
    """Upgrade the service's database to head with the scripts ``flask db upgrade`` runs.

    In this process: the CLI would import the whole app again, seconds per server on a small
    machine (tests/integration/test_migrations.py runs the README's command itself).
    """
    app = create_app(load_with({
        "DATABASE_URL": env["DATABASE_URL"],
        "ARTIFACT_ROOT": env["ARTIFACT_ROOT"],
        "ADMIN_TOKEN": env["ADMIN_TOKEN"],
        "PROMETHEUS_MULTIPROC_DIR": None,
    }))
    with app.app_context():
        upgrade()
        db.engine.dispose()


def start(env: dict, log_dir: Path, workers: int = 3, refresh_seconds: float = 1.0,
          server: str = "gunicorn") -> LiveRegistry:
    """Start ``server`` (gunicorn or granian) on a free port and wait until /readyz answers 200 and every
    worker is forked."""
    live = launch(env, log_dir, workers=workers, refresh_seconds=refresh_seconds, server=server)
    try:
        wait_serving(live)
    except RuntimeError:
        live.stop()
        raise
    return live


def launch(env: dict, log_dir: Path, workers: int = 3, refresh_seconds: float = 1.0,
           place: Place = LOOPBACK, server: str = "gunicorn", port: int | None = None) -> LiveRegistry:
    """Start ``server`` (a key of ``SERVERS``) on ``port`` (a free one if None) without waiting for it
    (``wait_ready`` does); ``place`` may put it in a network namespace of its own (bench/harness/netns.py)."""
    port = port or http_ports(env, 1)[0]
    env = {
        **env,
        "BIND": f"{place.address}:{port}",
        "WEB_CONCURRENCY": str(workers),
        "ALIAS_REFRESH_SECONDS": str(refresh_seconds),
    }
    log_path = log_dir / f"{server}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*place.prefix, *SERVERS[server]],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )
    return LiveRegistry(f"http://{place.address}:{port}", env["ADMIN_TOKEN"], env, process, log_path, workers, refresh_seconds)


def stop_all(instances: list[LiveRegistry]) -> None:
    """Ask every instance to shut down gracefully at once, then wait for each (killing it after 30 s)."""
    running = [live for live in instances if live.process.poll() is None]
    for live in running:
        live.process.send_signal(signal.SIGTERM)
    for live in running:
        try:
            live.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            live.process.kill()
            live.process.wait()


@contextmanager
def running(database_url: str, root: Path, admin_token: str, count: int = 1, workers: int = 3,
            refresh_seconds: float = 1.0, env: dict | None = None) -> Iterator[list[LiveRegistry]]:
    """``count`` instances on one database and one artifact root under ``root``; migrations run once.

    ``env`` adds settings. The instances start side by side; every one that started is stopped on the
    way out, also when another fails to start.
    """
    env = service_env(database_url, root / "artifacts", admin_token, **(env or {}))
    migrate(env)
    instances = []
    try:
        for port in http_ports(env, count):
            instances.append(launch(env, root, workers=workers, refresh_seconds=refresh_seconds, port=port))
        for live in instances:
            wait_serving(live)
        yield instances
    finally:
        stop_all(instances)


def die_with_parent() -> None:
    """Ask Linux to stop a server this process starts (gunicorn, MLflow) when the test process dies, even if
    it is killed mid-test; the ``preexec_fn`` of their ``Popen``."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_serving(live: LiveRegistry, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
    """Wait until ``live`` answers /readyz and has forked every worker (the first answers alone), within ``timeout``
    seconds for each."""
    wait_ready(live.url, live.process, live.log_path, timeout)
    deadline = time.monotonic() + timeout
    while len(psutil.Process(live.process.pid).children()) < live.workers:
        if live.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not fork its {live.workers} workers:\n{live.log_path.read_text()[-4000:]}")
        time.sleep(0.05)


def wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
    """Wait until ``url``/readyz answers 200; raise with the log's tail if the process dies or stalls (``timeout``
    seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()[-4000:]}")
        try:
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn not ready in {timeout:.0f}s:\n{log_path.read_text()[-4000:]}")
