"""Bombs against a real gunicorn: each is 413, no worker's memory grows past a bound, serving goes on.
A few hundred bytes claiming three million features are one of them.

The server lets artifacts unpack to 64 MB (MAX_MODEL_MB) so each refusal takes a moment; the bombs
still expand to 2.6 GB, and the 30 million empty lists cost 2 GB when read without bounds.
"""
import psutil
import pytest
import requests
import skops.io

from bench.bomb_files import (
    MIB,
    empty_lists_pickle,
    many_arrays_bomb,
    one_array_bomb,
    skops_zip_bomb,
    wide_claim_linear,
)
from bench.harness import server
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from tests.databases import BACKEND, fresh_database

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="an upload is refused before anything reaches the database: the SQLite pass runs it",
)

ADMIN_TOKEN = "e2e-bombs-token"
MAX_MODEL_MB = 64
EXPANDED = 2600 * MIB
# Above what a worker held before: MAX_MODEL_MB read, a million objects (about 80 MB), the upload
# itself (30 MB) and the decompressors' working memory. Any bomb read without bounds costs > 2 GB.
GROWTH_BOUND_MB = 250

BOMBS = {
    "zlib-one-array-2.6GB": lambda: one_array_bomb(EXPANDED, "zlib"),
    "gzip-many-arrays-2.6GB": lambda: many_arrays_bomb(EXPANDED, "gzip"),
    "bz2-many-arrays-2.6GB": lambda: many_arrays_bomb(EXPANDED, "bz2"),
    "xz-many-arrays-2.6GB": lambda: many_arrays_bomb(EXPANDED, "xz"),
    "30M-empty-lists": lambda: empty_lists_pickle(30_000_000),
    "skops-zip-2.6GB": lambda: skops_zip_bomb(skops.io.dumps(scaled_sum(1)), EXPANDED),
}


@pytest.fixture(scope="module")
def bounded_registry(tmp_path_factory):
    """Two workers with MAX_MODEL_MB=64, and a model ``served`` to predict with."""
    root = tmp_path_factory.mktemp("bombs")
    with fresh_database(root) as database_url:
        env = server.service_env(
            database_url, root / "artifacts", ADMIN_TOKEN, MAX_MODEL_MB=MAX_MODEL_MB, MAX_UPLOAD_MB=MAX_MODEL_MB
        )
        server.migrate(env)
        live = server.start(env, root, workers=2)
        try:
            assert upload(live, "served", scaled_sum(2)).status_code == 201
            yield live
        finally:
            live.stop()


def workers(live) -> dict[int, int]:
    """Each worker's pid and the peak of its resident memory so far (VmHWM), in MB."""
    return {child.pid: _peak_mb(child.pid) for child in psutil.Process(live.process.pid).children()}


def _peak_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024


def assert_serves(live) -> None:
    for _ in range(6):  # several connections, so more than one worker answers
        answer = requests.post(f"{live.url}/models/served/1/predict", json={"instances": [PROBE_ROW]}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [pytest.approx(expected_prediction(2))]


@pytest.mark.parametrize("make", BOMBS.values(), ids=BOMBS.keys())
def test_a_bomb_is_refused_with_413_in_bounded_memory_and_serving_goes_on(bounded_registry, make):
    live = bounded_registry
    assert_serves(live)
    before = workers(live)

    files = {"artifact": ("bomb.bin", make())}
    response = requests.post(f"{live.url}/models/bomb/versions", files=files, headers=live.headers, timeout=120)

    assert response.status_code == 413, response.text
    assert "MAX_MODEL_MB" in response.json()["detail"] or "objects" in response.json()["detail"]
    after = workers(live)
    assert after.keys() == before.keys()  # no worker died or was replaced
    growth = {pid: after[pid] - before[pid] for pid in before}
    assert max(growth.values()) < GROWTH_BOUND_MB, growth
    assert_serves(live)


def test_a_model_claiming_three_million_features_is_413_and_no_worker_grows(bounded_registry):
    live = bounded_registry
    before = workers(live)

    files = {"artifact": ("wide.pkl", wide_claim_linear(3_000_000))}
    response = requests.post(f"{live.url}/models/wide/versions", files=files, headers=live.headers, timeout=120)

    assert response.status_code == 413, response.text
    assert "MAX_FEATURES" in response.json()["detail"]
    growth = {pid: workers(live)[pid] - before[pid] for pid in before}
    assert max(growth.values()) < GROWTH_BOUND_MB, growth  # believed, its peak grew by about 700 MB
    assert requests.get(f"{live.url}/models/wide", timeout=30).status_code == 404
    assert_serves(live)
