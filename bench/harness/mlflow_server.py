"""A real MLflow tracking server for tests: ``mlflow server`` from its own venv (.venv-mlflow), on loopback.

MLflow pins gunicorn<27, which the service's venv cannot hold, so it is installed apart from
requirements-mlflow.txt (``make .venv-mlflow/bin/.installed``). The server keeps runs and the model
registry in SQLite under ``root`` and proxies artifacts (``mlflow-artifacts:/`` URIs, served under
/api/2.0/mlflow-artifacts/artifacts/) to ``root/artifacts``.
"""
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.harness.server import die_with_parent, free_ports
from config import BASE_DIR

# The MLflow venv's interpreter (not resolved: a venv's python is a link out of the venv); `mlflow` is beside it.
MLFLOW_PYTHON = Path(os.environ.get("MLFLOW_PYTHON") or BASE_DIR / ".venv-mlflow" / "bin" / "python")
STARTUP_TIMEOUT_SECONDS = 60


@dataclass
class MlflowServer:
    """A running ``mlflow server``: its URL (the tracking URI), process and log."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        """Stop the server and the uvicorn it started (one process group), and wait for them."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start(root: Path) -> MlflowServer:
    """Start ``mlflow server`` on a free port with its data under ``root``, and wait until /health answers."""
    mlflow = MLFLOW_PYTHON.parent / "mlflow"
    if not mlflow.is_file():
        raise RuntimeError(f"MLflow is not installed at {mlflow}: make .venv-mlflow/bin/.installed")
    root.mkdir(parents=True, exist_ok=True)
    port = free_ports(1)[0]
    command = [
        str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
    ]
    # No background job runner (a huey consumer, and a queue in /dev/shm) and no usage reports.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    log_path = root / f"mlflow-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=die_with_parent)
    server = MlflowServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_healthy(server)
    except RuntimeError:
        server.stop()
        raise
    return server


def _wait_healthy(server: MlflowServer) -> None:
    """Until /health answers 200; raise with the log's tail if the server exits or does not answer in time."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.process.returncode}:\n"
                               f"{server.log_path.read_text()[-4000:]}")
        try:
            if requests.get(f"{server.url}/health", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"mlflow server did not answer /health in {STARTUP_TIMEOUT_SECONDS}s:\n"
                       f"{server.log_path.read_text()[-4000:]}")


@contextmanager
def running(root: Path) -> Iterator[MlflowServer]:
    """An MLflow tracking server with its data under ``root``, for the duration of the block."""
    server = start(root)
    try:
        yield server
    finally:
        server.stop()
