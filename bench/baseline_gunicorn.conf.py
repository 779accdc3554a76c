"""gunicorn settings for the baseline app: the server settings of the repo's gunicorn.conf.py, minus its hooks.

Reading them from that file (rather than copying) keeps the comparison fair when it changes: same worker
class, worker count (WEB_CONCURRENCY), preloading, timeouts, and BLAS/OpenMP threads pinned to 1.
The registry-specific hooks (metrics directory, database engine, alias watcher) are left out.
"""
import os
import runpy
from pathlib import Path

_REPO_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
_had_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" in os.environ
_settings = runpy.run_path(str(_REPO_CONF))  # also sets OMP/OPENBLAS/MKL_NUM_THREADS=1 in os.environ
if not _had_metrics_dir:
    os.rmdir(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"))  # created by that file; the baseline has no metrics

bind = _settings["bind"]
workers = _settings["workers"]
worker_class = _settings["worker_class"]
threads = _settings["threads"]
preload_app = _settings["preload_app"]
timeout = _settings["timeout"]
graceful_timeout = _settings["graceful_timeout"]
control_socket_disable = _settings.get("control_socket_disable", False)
accesslog = _settings["accesslog"]
