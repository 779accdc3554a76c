"""A real gunicorn (3 workers) on a fresh database of the backend under test, per test module."""
import pytest

from bench.harness import server
from tests.databases import fresh_database

ADMIN_TOKEN = "e2e-admin-token"


@pytest.fixture(scope="module")
def live_registry(tmp_path_factory):
    """The running service: ``.url``, ``.admin_token``, ``.headers``, ``.env`` (for CLI subprocesses)."""
    root = tmp_path_factory.mktemp("live")
    with fresh_database(root) as database_url, server.running(database_url, root, ADMIN_TOKEN) as (live,):
        yield live
