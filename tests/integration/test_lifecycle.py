"""Every long-lived thread of a process is started by its app's lifecycle and ended by it: importing the
app and building it start none; the lifecycle's start starts each job's thread, its stop ends (joins) them."""
import subprocess
import sys
import threading

from api import lifecycle
from bench.harness.server import free_port
from tests.databases import BACKEND
from tests.helpers import close_app, make_app

# The threads of one worker with every job on: its serving, its readiness probes, its background work.
SERVING = {"alias-watcher", "shadow-runner", "prediction-log", "probe-database", "probe-artifact-store",
           "probe-store-space", "metric-files"}
BACKGROUND = {"webhook-deliverer", "leased-monitoring", "leased-rollouts", "leased-artifact-scrub"}
LISTENER = {"change-listener"} if BACKEND == "postgresql" else set()  # LISTEN/NOTIFY is PostgreSQL's


def test_importing_and_building_the_app_start_no_thread(database_url, tmp_path):
    """In a process of its own, so that no thread of another test's app is counted."""
    script = (
        "import threading\n"
        "from tests.helpers import make_app\n"
        f"make_app({database_url!r}, {str(tmp_path / 'artifacts')!r}, WATCH_ALIASES=True,"
        " WEBHOOK_DELIVER_IN_WORKERS=True, MONITOR_SECONDS=60, ROLLOUT_TICK_SECONDS=60, ARTIFACT_SCRUB_SECONDS=60,"
        f" PROMETHEUS_MULTIPROC_DIR={str(tmp_path)!r})\n"
        "print(sorted(thread.name for thread in threading.enumerate()))\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert ran.stdout.strip().splitlines()[-1] == "['MainThread']"


def test_the_lifecycle_starts_every_job_thread_and_its_stop_joins_them(database_url, tmp_path):
    before = set(threading.enumerate())
    app = make_app(database_url, tmp_path / "artifacts", WATCH_ALIASES=True, WEBHOOK_DELIVER_IN_WORKERS=True,
                   MONITOR_SECONDS=60, ROLLOUT_TICK_SECONDS=60, ARTIFACT_SCRUB_SECONDS=60,
                   PROMETHEUS_MULTIPROC_DIR=str(tmp_path), GRPC_BIND=f"127.0.0.1:{free_port()}")
    try:
        assert not set(threading.enumerate()) - before  # building the app started nothing
        with app.app_context():
            lifecycle.of(app).start()
        started = set(threading.enumerate()) - before
        assert {thread.name for thread in started} >= SERVING | BACKGROUND | LISTENER

        lifecycle.of(app).stop()

        assert [thread.name for thread in started if thread.is_alive()] == []
    finally:
        close_app(app)


def test_a_process_that_started_nothing_stops_nothing(database_url, tmp_path):
    before = set(threading.enumerate())
    app = make_app(database_url, tmp_path / "artifacts", WATCH_ALIASES=True, WEBHOOK_DELIVER_IN_WORKERS=True,
                   MONITOR_SECONDS=60, ROLLOUT_TICK_SECONDS=60, ARTIFACT_SCRUB_SECONDS=60)
    try:
        lifecycle.of(app).stop()  # never started here (gunicorn's master, a forked child): nothing fails

        assert not set(threading.enumerate()) - before
        with app.app_context():
            lifecycle.of(app).start()  # and a stop before does not keep a later start from starting everything
        assert {thread.name for thread in set(threading.enumerate()) - before} >= (SERVING - {"metric-files"}) | BACKGROUND
        lifecycle.of(app).stop()
    finally:
        close_app(app)
