"""A real gunicorn (3 workers) whose served forms are changed on disk while it serves: a node-records file
written in place under the running workers, a form's files replaced with their checksums written anew.
No worker crashes, no answer comes from what was not checked, and the version is served right again."""
import hashlib
import json
import os
import zlib
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
from sklearn.ensemble import RandomForestClassifier

from bench.harness.models import artifact_bytes
from registry.inference.tree_walk import NODE
from tests.databases import BACKEND
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="files on the machine's disk are what it tests: the SQLite pass runs it",
)

FEATURES = 4
ROWS = np.random.default_rng(11).normal(size=(40, FEATURES))


def forest(seed: int) -> RandomForestClassifier:
    """A forest whose node records are well past the size from which a form's arrays are mapped (64 KiB)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, FEATURES))
    y = (X[:, 0] + rng.normal(scale=2.0, size=len(X))) > 0  # noisy: deep trees, many nodes
    return RandomForestClassifier(n_estimators=10, random_state=seed).fit(X, y)


def publish(live, name: str, data: bytes) -> str:
    """Upload ``data`` as version 1 of ``name``, promote it; its sha256."""
    created = requests.post(f"{live.url}/models/{name}/versions", files={"artifact": ("model.joblib", data)},
                            headers=live.headers, timeout=120)
    assert created.status_code == 201, created.text
    promoted = requests.post(f"{live.url}/models/{name}/versions/1/promote", json={}, headers=live.headers, timeout=60)
    assert promoted.status_code == 200, promoted.text
    return created.json()["sha256"]


def predict(live, name: str) -> requests.Response:
    return requests.post(f"{live.url}/models/{name}/production/predict",
                         json={"instances": ROWS.tolist(), "return_proba": True}, timeout=60)


def answers_right(live, name: str, model, times: int = 9) -> bool:
    """``times`` answers in a row (every worker, most likely) are 200 with exactly the model's probabilities."""
    for _ in range(times):
        response = predict(live, name)
        if response.status_code != 200 or response.json()["probabilities"] != model.predict_proba(ROWS).tolist():
            return False
    return True


def form_dir(live, sha256: str) -> Path:
    return Path(live.env["ARTIFACT_CACHE_DIR"]) / "forms" / sha256[:2] / sha256


def manifest_of(folder: Path) -> dict:
    document = json.loads((folder / "form.json").read_text())
    return json.loads(document["manifest"]) if "manifest" in document else document


def array_file(folder: Path, match) -> Path:
    """The form's file whose array ``match`` accepts."""
    for name in manifest_of(folder)["files"]:
        if match(np.load(folder / name, mmap_mode="r")):
            return folder / name
    raise AssertionError(f"no such array in {folder}")


def workers(live) -> set[int]:
    return {child.pid for child in psutil.Process(live.process.pid).children()}


def test_node_records_written_under_running_workers_crash_none_and_the_version_is_served_right_again(live_registry):
    live = live_registry
    model = forest(1)
    sha256 = publish(live, "walked", artifact_bytes(model))
    publish(live, "bystander", artifact_bytes(forest(2)))
    assert answers_right(live, "walked", model)
    before = workers(live)
    nodes = array_file(form_dir(live, sha256), lambda array: array.dtype == NODE)
    first_record = np.load(nodes, mmap_mode="r").offset  # after the .npy header

    os.chmod(nodes, 0o644)  # written as root would, whatever the file's mode
    with open(nodes, "r+b") as f:  # in place: every worker's mapping sees it at once
        f.seek(first_record + 8)  # the first tree's root: both children far past the records
        f.write(np.array([2**31 - 1, 2**31 - 1], dtype="<i4").tobytes())

    for _ in range(12):
        response = predict(live, "walked")  # a connection cut here is a worker that crashed
        assert response.status_code in (200, 500), response.text
        if response.status_code == 500:
            assert response.headers["Content-Type"].startswith("application/problem+json")
        assert predict(live, "bystander").status_code == 200
    assert workers(live) == before  # no worker died
    wait_for(lambda: answers_right(live, "walked", model), "the version answering from a form checked again")
    assert workers(live) == before


def test_a_form_whose_files_were_replaced_with_their_checksums_written_anew_is_not_served(live_registry):
    live = live_registry
    model = forest(3)
    data = artifact_bytes(model)
    sha256 = publish(live, "original", data)
    assert answers_right(live, "original", model)
    folder = form_dir(live, sha256)
    value = array_file(folder, lambda array: array.dtype == np.float64 and array.ndim == 2 and array.shape[1] == 2)
    replacement = value.with_name("replacement.npy")
    np.save(replacement, np.ascontiguousarray(np.load(value)[:, ::-1]))  # every answer inverted
    forged = replacement.read_bytes()
    document = json.loads((folder / "form.json").read_text())
    manifest = manifest_of(folder)
    entry = manifest["files"][value.name]
    entry["bytes"] = len(forged)
    if "crc32" in entry:
        entry["crc32"] = zlib.crc32(forged)
    if "sha256" in entry:
        entry["sha256"] = hashlib.sha256(forged).hexdigest()
    replacement.replace(value)  # a file of its own: what workers mapped already is not touched
    text = json.dumps({**document, "manifest": json.dumps(manifest)} if "manifest" in document else manifest)
    (folder / "form.json").write_text(text)

    assert answers_right(live, "original", model)
    publish(live, "same-bytes", data)  # the same artifact under another name: loaded from its form
    assert answers_right(live, "same-bytes", model)
    assert requests.get(f"{live.url}/readyz", timeout=30).status_code == 200
