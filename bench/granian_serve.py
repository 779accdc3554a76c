"""Serve a WSGI app under granian's worker processes with what gunicorn's settings and hooks give it there,
so that ``bench.floor`` compares the two servers on the same app, worker count and threads.

    python -m bench.granian_serve wsgi:app                      # the registry, deploy/gunicorn_conf.py's hooks
    python -m bench.granian_serve --plain bench.baseline_app:app  # the floor app, the same settings, no hooks

BIND, WEB_CONCURRENCY, WORKER_THREADS, GRACEFUL_TIMEOUT and DRAIN_SECONDS mean what they mean to
gunicorn (deploy/gunicorn_conf.py, which this imports for them). granian has no hook in its workers,
so this runs them itself (docs/servers.md tells each guarantee and how it is kept here):

- the app is imported, its aliased models loaded and its heap frozen once, in the main process
  (gunicorn's ``preload_app`` and ``on_starting``); granian forks its workers from it;
- in each worker, the loader granian calls after the fork drops the inherited database connections and
  starts the app's lifecycle (gunicorn's ``post_fork`` and ``post_worker_init``), and the worker stops
  it when granian's serving returns, after the requests in flight finished (``worker_exit``);
- SIGTERM raises the shared stopping flag first, so /readyz answers 503 at once, and granian's own
  graceful stop follows after DRAIN_SECONDS (the master's SIGTERM handler under gunicorn);
- a metric file whose process is no longer a live child is retired (``child_exit``), checked every
  second and once more after the workers stopped; a worker that dies is respawned.
"""
import argparse
import logging
import os
import runpy
import signal
import threading
from pathlib import Path
from types import SimpleNamespace

import psutil

log = logging.getLogger("bench.granian_serve")
BASELINE_CONF = Path(__file__).resolve().with_name("baseline_gunicorn.conf.py")
RETIRE_SECONDS = 1.0


def main() -> None:
    """Parse the target, import it in this process, and serve it under granian until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="module:attribute of the WSGI app")
    parser.add_argument("--plain", action="store_true",
                        help="gunicorn's settings without the registry's hooks (the floor app)")
    args = parser.parse_args()
    settings = _plain_settings() if args.plain else _registry_settings()
    from granian import Granian
    from granian.constants import Interfaces
    from granian.server.mp import MPServer

    module, _, attribute = args.target.partition(":")
    app = getattr(__import__(module, fromlist=[attribute]), attribute)
    host, _, port = settings.bind.rpartition(":")
    server = Granian(args.target, address=host, port=int(port), interface=Interfaces.WSGI,
                     workers=settings.workers, blocking_threads=settings.threads,
                     workers_kill_timeout=settings.graceful_timeout, respawn_failed_workers=True,
                     log_access=bool(settings.accesslog))
    if args.plain:
        server.serve(target_loader=lambda _target: app)
        return
    hooks = RegistryHooks(server, app, settings)
    server.on_startup(hooks.started)
    server.on_shutdown(hooks.stopped)

    def worker(*worker_args, **worker_kwargs):
        try:
            MPServer._spawn_wsgi_worker(*worker_args, **worker_kwargs)
        finally:
            hooks.worker_exit()

    server.serve(spawn_target=worker, target_loader=hooks.load_in_worker)


def _registry_settings():
    """deploy/gunicorn_conf.py, imported as gunicorn reads it: its environment (BLAS threads, the metrics
    directory, the shared stopping flag, the heap's settings) and its settings and hooks."""
    from deploy import gunicorn_conf

    return gunicorn_conf


def _plain_settings() -> SimpleNamespace:
    """The floor app's gunicorn settings (bench/baseline_gunicorn.conf.py), read as gunicorn reads them."""
    return SimpleNamespace(**runpy.run_path(str(BASELINE_CONF)))


class RegistryHooks:
    """What deploy/gunicorn_conf.py's hooks do, at the points granian offers."""

    def __init__(self, server, app, conf):
        self.server = server
        self.app = app
        self.conf = conf
        self.directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        self._retiring = None

    def started(self) -> None:
        """In the main process, before the first fork: an empty metrics directory, the aliased models
        loaded and the heap frozen, SIGTERM made not-ready-first, dead workers' files retired."""
        from registry.process.loop import Loop

        shim = SimpleNamespace(app=SimpleNamespace(wsgi=lambda: self.app), log=log,
                               cfg=SimpleNamespace(workers=self.conf.workers, preload_app=True),
                               handle_term=None)
        self.conf.on_starting(shim)  # empties the metrics directory, loads the aliased models
        signal.signal(signal.SIGTERM, self._not_ready_first(signal.getsignal(signal.SIGTERM)))
        self._retiring = Loop("retire-metric-files", RETIRE_SECONDS, self.retire_dead)
        self._retiring.start()

    def _not_ready_first(self, graceful_stop):
        from registry import stopping

        def handle_term(signum, frame):
            first = not stopping.requested()
            stopping.announce()
            if first and self.conf.DRAIN_SECONDS > 0:
                log.info("not ready; stopping in %g s (DRAIN_SECONDS)", self.conf.DRAIN_SECONDS)
                timer = threading.Timer(self.conf.DRAIN_SECONDS, graceful_stop, (signum, None))
                timer.daemon = True
                timer.start()
                return
            graceful_stop(signum, frame)

        return handle_term

    def load_in_worker(self, _target):
        """In a worker, just forked: no database connection of the main process reused, the lifecycle started."""
        from api import lifecycle
        from registry.db import db

        with self.app.app_context():
            for engine in db.engines.values():
                engine.dispose(close=False)
        lifecycle.of(self.app).start()
        return self.app

    def worker_exit(self) -> None:
        """In a worker whose serving returned: the lifecycle stopped (its last metrics written)."""
        from api import lifecycle

        lifecycle.of(self.app).stop()

    def retire_dead(self) -> None:
        """Retire the metric file of every process that is neither this one nor a live child of it."""
        from registry.process import metric_files

        live = {os.getpid()} | {child.pid for child in psutil.Process().children() if _alive(child)}
        for path in Path(self.directory).glob(f"*{metric_files.SUFFIX}"):
            name = path.name.removesuffix(metric_files.SUFFIX)
            if name.isdigit() and int(name) not in live:
                metric_files.retire(self.directory, int(name))

    def stopped(self) -> None:
        """After every worker stopped: their files retired."""
        if self._retiring is not None:
            self._retiring.stop(timeout=5)
        self.retire_dead()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


if __name__ == "__main__":
    main()
