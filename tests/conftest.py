"""Shared fixtures: an app on a migrated database of the backend under test, clients, tokens."""
import shutil

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from registry.db import db
from tests.databases import BACKEND, fresh_database
from tests.helpers import ADMIN_TOKEN, MIGRATIONS, close_app, make_app


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory):
    """A database upgraded to head once per session (a template file on SQLite)."""
    with fresh_database(tmp_path_factory.mktemp("template")) as url:
        app = make_app(url, tmp_path_factory.mktemp("unused-artifacts"))
        with app.app_context():
            upgrade(directory=MIGRATIONS)
            db.engine.dispose()
        yield url


@pytest.fixture
def database_url(migrated_database, tmp_path):
    """A clean, migrated database for one test."""
    if BACKEND == "postgresql":
        _truncate_all(migrated_database)
        return migrated_database
    path = tmp_path / "registry.db"
    shutil.copyfile(migrated_database.removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def app(database_url, tmp_path):
    """The application on a fresh database and artifact root."""
    app = make_app(database_url, tmp_path / "artifacts")
    yield app
    close_app(app)


@pytest.fixture
def build_app(database_url, tmp_path):
    """``build_app(url=None, artifact_root=None, **overrides)``: another app, torn down afterwards."""
    apps = []

    def build(url=None, artifact_root=None, **overrides):
        app = make_app(url or database_url, artifact_root or tmp_path / f"artifacts-{len(apps)}", **overrides)
        apps.append(app)
        return app

    yield build
    for app in apps:
        close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin():
    """Headers of the bootstrap admin token."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def ci(client, admin):
    """Headers of a fresh ``ci`` token."""
    response = client.post("/tokens", json={"name": "ci-test", "role": "ci"}, headers=admin)
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def _truncate_all(url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    tables = ", ".join(t.name for t in db.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
