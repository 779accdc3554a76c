"""A real gunicorn (3 workers) on a fresh database of the backend under test, per test module; one Spark
and one Dask cluster per test run, for the batch scoring tests."""
import os
import sys
from pathlib import Path

import pytest

from bench.harness import server
from tests.databases import fresh_database

ADMIN_TOKEN = "e2e-admin-token"


# Admission never refuses here: a worker computes at most its threads' predictions, so a bound of one model's at
# its threads is never reached. These modules swap, roll out and shadow under load and count every answer; with
# the default bound (the threads less one, once a worker holds a second model) 6 callers of one model on 3
# workers were refused once on a slow machine, and 4 on 2 once in the autopilot's module. Every server of the
# suite whose callers expect every answer takes it; tests/e2e/test_overload.py and the admission tests bound it.
ADMISSION_OPEN = {"WORKER_THREADS": 4, "MAX_IN_FLIGHT_PER_MODEL": 4, "MAX_IN_FLIGHT": 4}


@pytest.fixture(scope="module")
def live_registry(tmp_path_factory):
    """The running service: ``.url``, ``.admin_token``, ``.headers``, ``.env`` (for CLI subprocesses)."""
    root = tmp_path_factory.mktemp("live")
    with fresh_database(root) as database_url, \
            server.running(database_url, root, ADMIN_TOKEN, env=ADMISSION_OPEN) as (live,):
        yield live


def _import_paths() -> str:
    """Where this checkout's ``registry`` and ``registry_client`` are imported from, for engine workers
    that start their own interpreters (Spark's Python workers do not inherit the test's sys.path)."""
    import registry
    import registry_client

    roots = [Path(registry.__file__).parents[1], Path(registry_client.__file__).parents[1]]
    return os.pathsep.join([str(root) for root in roots] + [os.environ.get("PYTHONPATH", "")])


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local Spark (``local[2]``, the machine's Java 17) for the whole test run: it starts slowly.
    Its JVM takes the Python and the import paths from the environment it starts with; the test process's
    own environment is given back at once, so that no later subprocess of the run finds the checkout on
    its PYTHONPATH (an installed package's test would import the checkout instead)."""
    from pyspark.sql import SparkSession

    paths, saved = _import_paths(), {name: os.environ.get(name) for name in ("PYSPARK_PYTHON", "PYTHONPATH")}
    os.environ.update(PYSPARK_PYTHON=sys.executable, PYTHONPATH=paths)
    try:
        session = (SparkSession.builder.master("local[2]").appName("registry-tests")
                   .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
                   .config("spark.local.dir", str(tmp_path_factory.mktemp("spark")))
                   .config("spark.pyspark.python", sys.executable)
                   .config("spark.executorEnv.PYTHONPATH", paths).getOrCreate())
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield session
    session.stop()


@pytest.fixture(scope="session")
def dask_client(tmp_path_factory):
    """One Dask LocalCluster of two worker processes (real scheduler and workers) for the whole test run."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      local_directory=str(tmp_path_factory.mktemp("dask"))) as cluster, Client(cluster) as client:
        yield client
