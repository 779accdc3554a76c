"""Shared fixtures: an app on a migrated database of the backend under test, clients, tokens, models."""
import io
import shutil

import joblib
import numpy as np
import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from api import create_app
from config import BASE_DIR
from registry.db import db
from tests.databases import BACKEND, fresh_database

ADMIN_TOKEN = "test-admin-token"
MIGRATIONS = str(BASE_DIR / "migrations")


def make_app(database_url: str, artifact_root, **overrides):
    """An app on ``database_url`` with test settings (no background watcher unless asked)."""
    settings = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "ARTIFACT_ROOT": str(artifact_root),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "WATCH_ALIASES": False,
        "PROMETHEUS_MULTIPROC_DIR": None,
    }
    settings.update(overrides)
    return create_app(settings)


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
    with app.app_context():
        app.extensions["model_registry"].server.stop()
        db.session.remove()
        db.engine.dispose()


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


def artifact_bytes(estimator, compress=0) -> bytes:
    """``estimator`` as the bytes of a joblib file."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=compress)
    return buffer.getvalue()


def regression_data(n_features=4, n_rows=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    y = X @ np.arange(1, n_features + 1) + rng.normal(scale=0.1, size=n_rows)
    return X, y


def classification_data(n_features=4, n_rows=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def upload(client, headers, name, estimator, metadata=None, **kw):
    """POST an estimator as a new version; returns the response."""
    import json

    data = {"artifact": (io.BytesIO(artifact_bytes(estimator)), "model.joblib")}
    if metadata is not None:
        data["metadata"] = json.dumps(metadata)
    return client.post(f"/models/{name}/versions", data=data, headers=headers, content_type="multipart/form-data", **kw)


def _truncate_all(url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    tables = ", ".join(t.name for t in db.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
