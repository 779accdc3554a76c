"""Real faults for the end-to-end tests: a small tmpfs, remounts, kill -9, the CPU a server burns."""
import io
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np
import psutil
import pytest
from sklearn.tree import DecisionTreeRegressor

from bench.harness.processes import tree_cpu_seconds
from bench.harness.server import BIN, LiveRegistry
from config import BASE_DIR


@contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` mounted at ``path`` for the block; needs root (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.fail("these tests mount a tmpfs: run them as root (or in a container with CAP_SYS_ADMIN)", pytrace=False)
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {path}: {mounted.stderr.strip()}", pytrace=False)
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def remount(path: Path, mode: str) -> None:
    """Remount the tmpfs at ``path`` read-only (``ro``) or read-write (``rw``)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True)


def processes(live: LiveRegistry) -> list[psutil.Process]:
    """The gunicorn master and its workers."""
    master = psutil.Process(live.process.pid)
    return [master, *master.children(recursive=True)]


def cpu_seconds(live: LiveRegistry) -> float:
    """User + system CPU seconds used so far by the master and its live workers."""
    return tree_cpu_seconds(live.process.pid)


def kill_hard(live: LiveRegistry) -> None:
    """``kill -9`` the master and every worker at once, as a power cut or the OOM killer would."""
    for process in processes(live):
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    live.process.wait()


def big_tree(rows: int, seed: int) -> bytes:
    """A valid regression tree of about 143 bytes per row, quick to fit (random splits, one feature)."""
    rng = np.random.default_rng(seed)
    model = DecisionTreeRegressor(splitter="random", random_state=seed).fit(rng.normal(size=(rows, 1)), rng.normal(size=rows))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def flask_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    """``flask --app wsgi …`` as an operator runs it on the server."""
    return subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=120)
