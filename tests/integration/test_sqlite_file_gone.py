"""A SQLite file deleted (or replaced) under a running server: writes are refused with a named 503 and
/readyz says why, instead of uploads answering 201 into an unlinked file that the next restart loses."""
import pytest
from flask_migrate import upgrade

from api.domain import EXTENSION
from tests.helpers import MIGRATIONS, assert_problem, scaled_sum, upload, upload_ok


@pytest.fixture
def own_file(build_app, tmp_path):
    """An app on a SQLite file of its own, migrated, with one version uploaded; and the file's path."""
    path = tmp_path / "own" / "registry.db"
    app = build_app(url=f"sqlite:///{path}")
    with app.app_context():
        upgrade(directory=MIGRATIONS)
        app.extensions[EXTENSION].runtime.models.refresh()  # as a server's watcher reads its aliases first
    return app, path


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_writes_to_a_vanished_database_file_are_503_and_readyz_says_why(own_file, admin, how):
    app, path = own_file
    client = app.test_client()
    upload_ok(client, admin, "m", scaled_sum(1))
    for leftover in path.parent.glob("registry.db*"):
        leftover.unlink()
    if how == "replaced":
        path.write_bytes(b"")  # another file at the same path now

    refused = upload(client, admin, "m", scaled_sum(2))

    assert_problem(refused, 503, "was deleted or replaced while the server ran", "nothing was written")
    assert refused.headers["Retry-After"]
    # The refused connection was dropped; what is at the path now holds no schema. This process
    # still serves what it loaded: degraded, not unready.
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
    assert ready.get_json()["checks"]["database"] is False
    assert "holds no schema" in ready.get_json()["problems"]["database"]
    assert_problem(upload(client, admin, "m", scaled_sum(3)), 503, "database is unavailable")


def test_readiness_notices_a_deleted_file_before_any_write(own_file, admin):
    app, path = own_file
    client = app.test_client()
    assert client.get("/readyz").status_code == 200  # a pooled connection is open on the file
    for leftover in path.parent.glob("registry.db*"):
        leftover.unlink()

    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
    assert "was deleted or replaced while the server ran" in ready.get_json()["problems"]["database"]
