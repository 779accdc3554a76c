"""Start and stop the two apps under test, both under the same server (gunicorn by default, or granian)
with the same settings and worker count.

The registry is started exactly as the end-to-end tests start it (``bench/harness/server.py``): migrations
through the CLI, then ``gunicorn -c gunicorn.conf.py wsgi:app`` (or ``python -m bench.granian_serve
wsgi:app``) on a free port with a fresh database (SQLite unless the caller gives one).
"""
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.harness import server as e2e
from bench.harness.checkout import stop_checkout
from config import BASE_DIR

WORKERS = 2
REFRESH_SECONDS = 1.0
ADMIN_TOKEN = "bench-admin-token"
BASELINE_CONF = Path(__file__).resolve().with_name("baseline_gunicorn.conf.py")
# The floor app's command under each server: the registry's settings without its hooks.
BASELINE_COMMANDS = {
    "gunicorn": [str(e2e.BIN / "gunicorn"), "-c", str(BASELINE_CONF), "bench.baseline_app:app"],
    "granian": [sys.executable, "-m", "bench.granian_serve", "--plain", "bench.baseline_app:app"],
}


@dataclass
class Server:
    """A server the bench started: where it listens, its process and its log."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        """Shut the server down gracefully and wait for it."""
        stop_checkout(self.process)


def start_registry(root: Path, server: str = "gunicorn", *, database_url: str | None = None,
                   **settings) -> e2e.LiveRegistry:
    """The registry under ``server`` on a fresh database (``database_url``, migrated here; by default a SQLite
    file under ``root``) and an artifact root under ``root``; ``settings`` add to its environment
    (``WORKER_THREADS=1``)."""
    env = e2e.service_env(database_url or f"sqlite:///{root}/registry.db", root / "artifacts", ADMIN_TOKEN, **settings)
    e2e.migrate(env)
    return e2e.start(env, root, workers=WORKERS, refresh_seconds=REFRESH_SECONDS, server=server)


def start_baseline(root: Path, model_paths: dict[str, Path], server: str = "gunicorn", **settings) -> Server:
    """The minimal Flask app serving ``model_paths`` (name -> joblib file) under ``server``, once it
    answers /readyz; ``settings`` add to its environment."""
    baseline = spawn_baseline(root, model_paths, server, **settings)
    try:
        e2e.wait_ready(baseline.url, baseline.process, baseline.log_path)
    except RuntimeError:
        baseline.stop()
        raise
    return baseline


def spawn_baseline(root: Path, model_paths: dict[str, Path], server: str = "gunicorn", **settings) -> Server:
    """The baseline under ``server`` just launched (not waited for)."""
    port = e2e.free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}  # as e2e.service_env does
    env.update(
        PYTHONPATH=str(BASE_DIR),
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY=str(WORKERS),
        BASELINE_MODELS=";".join(f"{name}={path}" for name, path in model_paths.items()),
        **{name: str(value) for name, value in settings.items()},
    )
    log_path = root / f"baseline-{server}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            BASELINE_COMMANDS[server],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    return Server(f"http://127.0.0.1:{port}", process, log_path)


def spawn_registry(env: dict, root: Path) -> Server:
    """The registry's gunicorn (as ``tests/e2e/server.py`` runs it) just launched on ``env``'s database."""
    port = e2e.free_port()
    env = {**env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(WORKERS), "ALIAS_REFRESH_SECONDS": str(REFRESH_SECONDS)}
    log_path = root / f"registry-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(e2e.BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    return Server(f"http://127.0.0.1:{port}", process, log_path)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` and its live children (gunicorn's workers).

    Server CPU per request hardly moves when other jobs share the machine, unlike rps and latency.
    """
    ticks = sum(used for process, parent, used in _processes() if pid in (process, parent))
    return ticks / os.sysconf("SC_CLK_TCK")


def waits(pid: int) -> int:
    """Voluntary context switches so far of every thread of process ``pid`` and its live children: each time one of
    them blocked (on the GIL, a lock, a socket), and a thread woken for nothing counts too."""
    found = 0
    for process, parent, _ in _processes():
        if pid not in (process, parent):
            continue
        for task in Path(f"/proc/{process}/task").glob("*/status"):
            try:
                found += int(task.read_text().split("\nvoluntary_ctxt_switches:")[1].split()[0])
            except (OSError, IndexError):  # the thread ended meanwhile
                continue
    return found


def worker_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds used so far by each live child of ``pid`` (gunicorn's workers), by pid."""
    return {process: used / os.sysconf("SC_CLK_TCK") for process, parent, used in _processes() if parent == pid}


def _processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, utime + stime in clock ticks) of every process, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ... utime stime ...": comm may hold spaces, so split after its ")".
        fields = text[text.rindex(")") + 2:].split()
        found.append((int(entry), int(fields[1]), int(fields[11]) + int(fields[12])))
    return found
