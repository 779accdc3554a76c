"""gunicorn's master imports what uploads and loads need before it forks (issue 47, item 6): a fresh
worker has scikit-learn's, SciPy's and pandas' compiled modules mapped before any request, even with no
aliased model to warm, so that no worker's first upload or load pays seconds of imports.
``python -m bench.first_request`` gives the figures."""
import psutil
import pytest

from tests.databases import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="what gunicorn's master imports does not depend on "
                                "the database: the SQLite pass runs it")

# A compiled module of each library, mapped into a process once the library is imported.
COMPILED = {"scikit-learn": "/sklearn/tree/_tree.", "SciPy": "/scipy/special/_ufuncs.", "pandas": "/pandas/_libs/lib."}


def test_every_fresh_worker_has_the_model_libraries_loaded_before_any_request(live_registry):
    workers = psutil.Process(live_registry.process.pid).children()
    assert len(workers) == live_registry.workers
    for worker in workers:
        mapped = {region.path for region in worker.memory_maps()}
        missing = [library for library, part in COMPILED.items() if not any(part in path for path in mapped)]
        assert missing == [], f"worker {worker.pid} has not imported {missing}"
