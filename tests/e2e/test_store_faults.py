"""A real gunicorn whose artifact store is a real 8 MB tmpfs: filled up, then remounted read-only.

Both tests share one server; each leaves the store writable, and the full store is the last test.
"""
import pytest
import requests

from bench.harness import server
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from tests.databases import fresh_database
from tests.e2e.faults import big_tree, remount, tmpfs

ADMIN_TOKEN = "e2e-store-faults-token"
STORE_MB = 8
MIN_FREE_MB = 3


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """gunicorn with ARTIFACT_ROOT on a fresh tmpfs; ``.store_dir`` is its mount point."""
    root = tmp_path_factory.mktemp("store-faults")
    with fresh_database(root) as database_url, tmpfs(root / "artifacts", STORE_MB) as store_dir:
        env = server.service_env(database_url, store_dir, ADMIN_TOKEN, MIN_FREE_STORE_MB=MIN_FREE_MB)
        server.migrate(env)
        live = server.start(env, root, workers=2)
        live.store_dir = store_dir
        try:
            yield live
        finally:
            live.stop()


def post_artifact(live, name: str, data: bytes) -> requests.Response:
    return requests.post(f"{live.url}/models/{name}/versions", files={"artifact": ("model.joblib", data)},
                         headers=live.headers, timeout=60)


def serving(live, name: str, factor: float) -> None:
    """A model uploaded earlier answers correctly, on every worker (several requests), by alias and pinned."""
    for ref in ["production", "1"] * 4:
        response = requests.post(f"{live.url}/models/{name}/{ref}/predict", json={"instances": [PROBE_ROW]}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == [pytest.approx(expected_prediction(factor))]


def upload_and_promote(live, name: str, factor: float) -> None:
    assert upload(live, name, scaled_sum(factor)).status_code == 201
    promoted = requests.post(f"{live.url}/models/{name}/versions/1/promote", json={}, headers=live.headers, timeout=30)
    assert promoted.status_code == 200, promoted.text


def stored(live) -> tuple[set[str], list[str]]:
    """The artifact names on the tmpfs, and any unfinished temp files."""
    files = [p for p in live.store_dir.rglob("*") if p.is_file()]
    return {p.name for p in files if not p.name.startswith(".")}, [p.name for p in files if p.name.startswith(".")]


def referenced(live) -> set[str]:
    shas = set()
    for model in requests.get(f"{live.url}/models", timeout=30).json()["items"]:
        versions = requests.get(f"{live.url}/models/{model['name']}/versions?include_archived=true", timeout=30)
        shas |= {v["sha256"] for v in versions.json()["items"]}
    return shas


def assert_problem(response: requests.Response, status: int, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


def test_a_read_only_store_is_503_with_retry_after_and_degraded_while_models_keep_answering(live):
    upload_and_promote(live, "kept-ro", 2)
    remount(live.store_dir, "ro")
    try:
        refused = post_artifact(live, "new-ro", big_tree(2_000, seed=99))
        ready = requests.get(f"{live.url}/readyz", timeout=30)
        serving(live, "kept-ro", 2)
    finally:
        remount(live.store_dir, "rw")

    body = assert_problem(refused, 503, "cannot be written", "Read-only file system", "ARTIFACT_ROOT")
    assert int(refused.headers["Retry-After"]) > 0
    assert str(live.store_dir) not in body["detail"]
    assert ready.status_code == 200  # predictions go on: the load balancer must keep this replica
    assert ready.json()["status"] == "degraded" and "artifact_store" in ready.json()["problems"]
    assert requests.get(f"{live.url}/models/new-ro", timeout=30).status_code == 404
    assert stored(live)[1] == []
    assert requests.get(f"{live.url}/readyz", timeout=30).json()["status"] == "ready"  # writable again


def test_a_full_store_is_507_leaves_nothing_half_written_and_models_keep_answering(live):
    upload_and_promote(live, "kept-full", 3)
    assert requests.get(f"{live.url}/readyz", timeout=30).json()["warnings"] == []
    statuses = []
    for seed in range(2 * STORE_MB):  # ~1.4 MB each: the store is full long before the last
        response = post_artifact(live, "big", big_tree(10_000, seed))
        statuses.append(response.status_code)
        if response.status_code != 201:
            break

    assert statuses[-1] == 507 and set(statuses[:-1]) == {201} and len(statuses) > 2, statuses
    assert_problem(response, 507, "artifact store is full", "No space left on device", "free space")
    artifacts, temp_files = stored(live)
    assert temp_files == []
    assert artifacts == referenced(live)
    big_versions = requests.get(f"{live.url}/models/big/versions", timeout=30).json()
    assert big_versions["total"] == len(statuses) - 1
    serving(live, "kept-full", 3)
    ready = requests.get(f"{live.url}/readyz", timeout=30)
    assert ready.status_code == 200  # nearly full is a warning: predictions still work
    (warning,) = ready.json()["warnings"]
    assert f"MIN_FREE_STORE_MB={MIN_FREE_MB}" in warning
