"""Helpers shared by the tests: apps on a given database, small fitted models, uploads, problem checks."""
import io
import json
import time
from pathlib import Path

import numpy as np

from api import create_app, lifecycle
from bench.harness.models import PROBE_ROW, artifact_bytes, scaled_sum
from config import BASE_DIR, load_with
from registry.db import db
from tests.engines import release

__all__ = [
    "ADMIN_TOKEN", "MIGRATIONS", "PROBE_ROW", "PROBLEM_JSON", "artifact_bytes", "assert_problem", "classification_data",
    "close_app", "make_app", "regression_data", "scaled_sum", "upload", "upload_ok",
]

ADMIN_TOKEN = "test-admin-token"
MIGRATIONS = str(BASE_DIR / "migrations")
PROBLEM_JSON = "application/problem+json"


def make_app(database_url: str, artifact_root, **overrides):
    """An app on ``database_url`` with test settings (no background watcher unless asked): the environment's, with
    these variables and ``overrides`` on top, each by its variable's name (``PREDICTION_LOG_SAMPLE=1.0``; None:
    unset), read as a start reads them."""
    variables = {
        "DATABASE_URL": database_url,
        "ARTIFACT_ROOT": artifact_root,
        "ARTIFACT_CACHE_DIR": Path(artifact_root).parent / "artifact-cache",  # the test's machine, not the repo's
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "WATCH_ALIASES": False,
        "WEBHOOK_DELIVER_IN_WORKERS": False,
        "MONITOR_SECONDS": 0,  # tests sweep when they mean to (flask monitoring sweep, or the sweep itself)
        "ROLLOUT_TICK_SECONDS": 0,  # and tick the rollout controller when they mean to
        "ARTIFACT_SCRUB_SECONDS": 0,  # and scrub the artifact store when they mean to (flask artifacts scrub)
        "PROMETHEUS_MULTIPROC_DIR": None,
        "SECRET_KEY": "test-secret-key",
        **overrides,
    }
    return create_app(load_with(variables), {"TESTING": True})


def close_app(app) -> None:
    """Stop what the app's lifecycle started (its first request starts it), what a test started by hand (its
    watcher, its writer, its deliverer), and give back its database connections."""
    with app.app_context():
        lifecycle.of(app).stop()
        app.extensions["model_registry"].runtime.models.stop()
        app.extensions["model_registry"].prediction_log.stop()
        app.extensions["webhook_deliverer"].stop()
        db.session.remove()
        release(db.engine)


def regression_data(n_features=4, n_rows=60, seed=0):
    """Rows and a linear target with a little noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    y = X @ np.arange(1, n_features + 1) + rng.normal(scale=0.1, size=n_rows)
    return X, y


def classification_data(n_features=4, n_rows=80, seed=0):
    """Rows and a two-class target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def upload(client, headers, name, estimator, metadata=None, **kw):
    """POST an estimator as a new version through a test client; returns the response."""
    data = {"artifact": (io.BytesIO(artifact_bytes(estimator)), "model.joblib")}
    if metadata is not None:
        data["metadata"] = json.dumps(metadata)
    return client.post(f"/models/{name}/versions", data=data, headers=headers, content_type="multipart/form-data", **kw)


def upload_ok(client, headers, name, estimator, metadata=None) -> int:
    """Upload that must create a version; returns its number."""
    response = upload(client, headers, name, estimator, metadata)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["version"]


def assert_problem(response, status: int, *fragments: str) -> dict:
    """A problem+json of ``status`` whose detail names every fragment; returns the body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["type"]
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


class WrappedLoader:
    """A model server's loader that calls ``before(info)`` ahead of every load (a gate, a failure)."""

    def __init__(self, loader, before):
        self.loader, self.before = loader, before

    def __call__(self, info):
        self.before(info)
        return self.loader(info)

    def stamp(self, sha256):
        return self.loader.stamp(sha256)

    def changed(self, servable):
        return self.loader.changed(servable)


def wait_for(condition, what: str, deadline_seconds: float = 30.0):
    """``condition()``'s first truthy value, polled every 0.2 s; fails naming ``what`` after the deadline."""
    deadline = time.monotonic() + deadline_seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.2)
    return found
