"""Small mixed-dtype tables, CSV writing, and a fake registry for the trainers' tests."""
from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import is_classifier

from trainers import retrain as retrain_module
from registry_client import Version


def mixed_features(rows: int, seed: int) -> pd.DataFrame:
    """Two numeric columns (one with NaNs) and a text column with a missing value."""
    rng = np.random.default_rng(seed)
    size = rng.normal(10, 3, rows)
    size[::7] = np.nan
    return pd.DataFrame({
        "size": size,
        "age": rng.integers(1, 50, rows).astype(float),
        "colour": rng.choice(["red", "green", "blue"], rows).astype(object),
    }).assign(colour=lambda frame: frame["colour"].where(frame.index != 3))


@pytest.fixture
def regression_frame() -> pd.DataFrame:
    """80 rows whose target depends on every feature, plus noise."""
    features = mixed_features(80, seed=1)
    rng = np.random.default_rng(2)
    effect = features["colour"].map({"red": 5.0, "green": -5.0, "blue": 0.0}).fillna(0.0)
    y = 2.0 * features["size"].fillna(10) - 0.5 * features["age"] + effect + rng.normal(0, 1, 80)
    return features.assign(price=y.round(3))


@pytest.fixture
def binary_frame() -> pd.DataFrame:
    """80 rows labelled "yes"/"no", mostly by size."""
    features = mixed_features(80, seed=3)
    label = np.where(features["size"].fillna(10) + (features["colour"] == "red") * 2 > 10.5, "yes", "no")
    return features.assign(label=label)


@pytest.fixture
def multiclass_frame() -> pd.DataFrame:
    """90 rows with three text classes driven by size and age."""
    features = mixed_features(90, seed=4)
    score = features["size"].fillna(10) + features["age"] / 10
    label = np.select([score < 11, score < 14], ["low", "mid"], default="high")
    return features.assign(label=label)


@pytest.fixture
def write_csv(tmp_path):
    """Write a DataFrame (or raw text) to a CSV file in a temp directory and return its path."""

    def write(content: pd.DataFrame | str, name: str = "data.csv"):
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        else:
            content.to_csv(path, index=False)
        return path

    return write


class FakeRegistry:
    """Just enough of the registry API for retrain: versions, aliases, uploads, promotions."""

    def __init__(self):
        self.artifacts: dict[int, bytes] = {}
        self.versions: dict[int, dict] = {}
        self.aliases: dict[str, int] = {}
        self.promotions: list[dict] = []
        self.uploads: list[dict] = []
        self.evaluations: list[dict] = []
        self.references: list[dict] = []

    def add_version(self, content: bytes, task: str, metadata: dict | None = None, features: list[str] = ()) -> int:
        """Store an artifact as the next version, as an upload would (with signature ``features``)."""
        number = len(self.versions) + 1
        self.artifacts[number] = content
        signature = {"features": [{"name": name, "dtype": "float64"} for name in features]}
        self.versions[number] = Version.from_json({"version": number, "task": task, "signature": signature})
        return number

    def find_version(self, model, ref):
        number = self.aliases.get(ref) if isinstance(ref, str) else ref
        return self.versions.get(number)

    def download(self, model, ref, progress=None):
        content = self.artifacts[ref]
        if progress is not None:
            progress(len(content), len(content))
        return content

    def upload(self, model, artifact, filename=None, **metadata):
        self.uploads.append(metadata)
        for number, content in self.artifacts.items():
            if content == artifact:
                return self.versions[number]
        estimator = joblib.load(io.BytesIO(artifact))
        task = "classification" if is_classifier(estimator) else "regression"
        return self.versions[self.add_version(artifact, task, metadata)]

    def record_evaluation(self, model, version, dataset, metrics, note=""):
        self.evaluations.append({"version": version, "dataset": dataset, "metrics": metrics, "note": note})
        return self.evaluations[-1]

    def set_reference(self, model, version, source, rows):
        self.references.append({"version": version, "source": source, "rows": rows})
        return self.references[-1]

    def promote(self, model, version, alias="production", reason="", force=False):
        self.promotions.append({"version": version, "alias": alias, "reason": reason})
        self.aliases[alias] = version
        return {"model": model, "alias": alias, "version": version}


@pytest.fixture
def fake_registry(monkeypatch) -> FakeRegistry:
    """A FakeRegistry, with champions loaded by plain joblib since the fake holds trusted bytes."""
    monkeypatch.setattr(
        retrain_module, "load_champion", lambda content, version: joblib.load(io.BytesIO(content))
    )
    return FakeRegistry()


HANG_UP = None  # a queued answer that closes the connection without answering


class StubRegistry(BaseHTTPRequestHandler):
    """Answers every request with the (status, content type, body) queued in ``server.answers``, over
    HTTP/1.0 (a connection per request), or hangs up when the answer is ``HANG_UP``."""

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self._answer()

    def do_PUT(self):
        self._answer()

    def do_PATCH(self):
        self._answer()

    def do_DELETE(self):
        self._answer()

    def _answer(self):
        length = int(self.headers.get("Content-Length", 0))
        self.server.requests.append({
            "method": self.command, "path": self.path, "headers": dict(self.headers),
            "body": self.rfile.read(length), "client_port": self.client_address[1],
        })
        answer = self.server.answers.pop(0)
        if answer is HANG_UP:
            self.close_connection = True
            return
        status, content_type, body, headers = answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class KeptAliveStubRegistry(StubRegistry):
    """The stub over HTTP/1.1: a client's connection stays open between its requests."""

    protocol_version = "HTTP/1.1"


class StubServer(ThreadingHTTPServer):
    """The stub's server: the answers still to give, the requests received, its URL."""

    def __init__(self, handler: type[StubRegistry] = StubRegistry):
        super().__init__(("127.0.0.1", 0), handler)
        self.answers: list[tuple[int, str, bytes, dict]] = []
        self.requests: list[dict] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, status: int, body: bytes, content_type: str = "application/octet-stream",
               headers: dict | None = None) -> None:
        """Queue a raw answer."""
        self.answers.append((status, content_type, body, headers or {}))

    def answer_json(self, status: int, body: dict, problem: bool = False, headers: dict | None = None) -> None:
        """Queue a JSON answer, as problem+json when ``problem``."""
        content_type = "application/problem+json" if problem else "application/json"
        self.answer(status, json.dumps(body).encode(), content_type, headers)

    def hang_up(self) -> None:
        """Queue a hang-up: the connection closed with no answer."""
        self.answers.append(HANG_UP)


@pytest.fixture
def stub():
    """A running stub registry; queue answers with ``stub.answer_json(...)``."""
    yield from _serving(StubServer())


@pytest.fixture
def kept_alive_stub():
    """The stub registry over HTTP/1.1, which keeps a client's connection between requests."""
    yield from _serving(StubServer(KeptAliveStubRegistry))


def _serving(server: StubServer):
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()

