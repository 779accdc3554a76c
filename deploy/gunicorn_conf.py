"""gunicorn settings for production and for the end-to-end tests: ``gunicorn -c python:deploy.gunicorn_conf wsgi:app``
wherever the package is installed, ``gunicorn -c gunicorn.conf.py wsgi:app`` in a checkout (the same settings).

Environment: BIND (default 127.0.0.1:8000), WEB_CONCURRENCY (workers, default 2 per core),
WORKER_THREADS (default 4), GRACEFUL_TIMEOUT (seconds the requests in flight get to finish on
SIGTERM, default 30), DRAIN_SECONDS (how long a server that got SIGTERM goes on taking requests while
/readyz answers 503, so that load balancers stop sending before its port closes; default 0),
LINGER_SECONDS (after a stop, how long the master stays with nothing listening before it exits;
default 0), ACCESS_LOG, plus the app's own variables: config.py reads them all, once.

SIGTERM is a graceful stop: not ready at once, then (after DRAIN_SECONDS) no new connections, the
requests in flight finish within GRACEFUL_TIMEOUT, every worker writes what it holds, LINGER_SECONDS
with the port closed, exit 0.
"""
import gc
import os
import shutil
import signal
import tempfile
import threading
import time

# One BLAS/OpenMP thread per worker: small models get no speed from more, and workers × threads
# oversubscribe the cores. Set before the workers import NumPy.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Shared metrics: every process writes its series here about once a second, /metrics adds them up.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="registry-metrics-"))

from config import MB, RETIRED, memory_mb, settings  # noqa: E402  (after the environment above: settings() reads it once)
from registry import stopping  # noqa: E402  (its shared flag is mapped here, in the master, before any fork)
from registry.heap import map_large_blocks  # noqa: E402

map_large_blocks()  # before the app loads anything; the workers inherit it

SERVER = settings().server  # a value that does not parse stops the start here, in the master
DRAIN_SECONDS, LINGER_SECONDS = SERVER.drain_seconds, SERVER.linger_seconds
bind = SERVER.bind
workers = SERVER.workers
# Threads, so a request that waits on the database (a SQLite file another process holds locked, a
# slow PostgreSQL) never holds up the predictions behind it: they run on the worker's other threads.
worker_class = "deploy.gthread_worker.ThreadWorker"  # gthread, noting each request's arrival, a flooded model's taken last
threads = SERVER.worker_threads
# Import the app (and scikit-learn) once in the master; workers fork from it, sharing the pages.
preload_app = True
timeout = 120
graceful_timeout = int(SERVER.graceful_timeout_seconds)
# Several instances on one host must not fight over one default control socket path.
control_socket_disable = True
accesslog = SERVER.access_log


def on_starting(server):
    """Start from an empty metrics directory (stale files from a previous run would be summed), then load
    what the workers will serve before the port opens (gunicorn binds right after this hook): until the
    aliased models are loaded a connection is refused, which a load balancer passes to another replica
    at once, rather than accepted and held while they load."""
    directory = SERVER.metrics_dir
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    server.handle_term = _not_ready_first(server, server.handle_term)
    for name in SERVER.retired:
        server.log.warning("%s is set and ignored: %s", name, RETIRED[name])
    _load_before_listening(server)


def _not_ready_first(server, graceful_stop):
    """The master's SIGTERM handler: every worker's /readyz answers 503 from now on; gunicorn's graceful
    stop follows after DRAIN_SECONDS (at once on a second SIGTERM)."""
    def handle_term():
        first = not stopping.requested()
        stopping.announce()
        if first and DRAIN_SECONDS > 0:
            server.log.info("not ready; stopping in %g s (DRAIN_SECONDS)", DRAIN_SECONDS)
            timer = threading.Timer(DRAIN_SECONDS, server.signal, (signal.SIGTERM, None))
            timer.daemon = True  # a quick stop (SIGINT) meanwhile must not wait for it
            timer.start()
            return
        graceful_stop()  # raises StopIteration: the arbiter stops its workers gracefully, then exits 0

    return handle_term


def _mb(size_bytes: int) -> float:
    """A size held in bytes, in the MB its setting was given in (to 4 decimals: 0.0014 MB is 1,468 bytes)."""
    return round(size_bytes / MB, 4)


def _load_before_listening(server):
    """Say the bounds the workers run with; import what uploads and loads need, and load every aliased
    model, once in the master, so workers fork with them and share their pages."""
    from registry.serving.model_libraries import import_model_libraries

    import_model_libraries()  # else every worker's first upload or load imports scikit-learn and SciPy: seconds

    given = settings()
    server.log.info(
        "bounds: MODEL_MEMORY_MB=%g of loaded models per worker, MAX_MODEL_MB=%g per artifact loaded "
        "(%d MB of memory, %d workers), MAX_UPLOAD_MB=%g, MAX_PREDICT_MB=%g, MAX_BATCH_ROWS=%d, "
        "PREDICTION_LOG_MAX_MB=%g of logged requests, PREDICTION_LOG_MIN_FREE_MB=%g",
        _mb(given.serving.model_memory_bytes), _mb(given.limits.max_model_bytes), memory_mb(), server.cfg.workers,
        _mb(given.limits.max_upload_bytes), _mb(given.limits.max_predict_bytes), given.limits.max_batch_rows,
        _mb(given.prediction_log.max_bytes), _mb(given.prediction_log.min_free_bytes),
    )
    if not server.cfg.preload_app:
        return
    from api.domain import EXTENSION
    from registry.process import metric_files
    from registry.db import db

    app = server.app.wsgi()
    domain = app.extensions[EXTENSION]
    started = time.monotonic()
    try:
        with domain.store.cached_only():  # an S3 client used here would hang in every worker after the fork
            domain.runtime.models.refresh()
        server.log.info("aliased models loaded in %.1f s; opening the port", time.monotonic() - started)
    except Exception:  # the workers warm themselves then, as without this
        server.log.exception("could not load the aliased models before forking")
    finally:
        metric_files.flush(SERVER.metrics_dir)  # what the master loaded counts once, from its own file
        # No database connection may cross the fork (a child closing an inherited SQLite one
        # breaks the WAL index for every process): close what the load opened.
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
        # Move everything imported and loaded so far out of the collector's reach: a collection in a
        # worker would otherwise write to every object's header, copying the pages it shares.
        gc.collect()
        gc.freeze()


def post_fork(server, worker):
    """Never share a database connection opened in the master across forks."""
    if not server.cfg.preload_app:
        return  # each worker builds its own app and engine after the fork
    from registry.db import db

    with server.app.wsgi().app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)


def post_worker_init(worker):
    """Start the worker's parts before it takes its first request (the app's lifecycle: its aliased
    models warmed and watched, its webhook deliverer, its background loops, its shared metrics)."""
    from api import lifecycle

    lifecycle.of(worker.app.wsgi()).start()


def worker_exit(server, worker):
    """Stop the worker's parts before it goes (the app's lifecycle, in reverse: sends in flight finished,
    leases let go, rollout figures and the prediction log's queue written, its last metrics shared)."""
    from api import lifecycle

    if getattr(worker, "wsgi", None) is not None:  # None when the worker failed to boot
        lifecycle.of(worker.app.wsgi()).stop()


def child_exit(server, worker):
    """A dead worker's counts stay in /metrics; its gauges leave."""
    from registry.process import metric_files

    metric_files.retire(SERVER.metrics_dir, worker.pid)


def on_exit(server):
    """After a SIGTERM stop, with LINGER_SECONDS, stay that long with nothing listening: a load balancer in
    front gets refused connections, which it retries on another replica at once, before this address goes
    away with the container (a connection to an address that is gone only times out)."""
    if LINGER_SECONDS > 0 and stopping.requested():
        server.log.info("stopped, port closed; exiting in %g s (LINGER_SECONDS)", LINGER_SECONDS)
        time.sleep(LINGER_SECONDS)
