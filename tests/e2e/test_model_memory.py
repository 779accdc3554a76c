"""Many versions asked for at once from two real gunicorn workers whose model memory is held to a
budget: every answer is right, each worker's loaded versions stay within MODEL_MEMORY_MB (plus the
one it just loaded), and its resident memory does not grow with the number of versions served."""
import random
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sklearn.ensemble import RandomForestRegressor

from bench.harness import server
from bench.harness.models import artifact_bytes
from tests.databases import BACKEND, fresh_database
from tests.e2e.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("each worker's model memory is what it tests; tests/integration/test_model_memory.py runs on both"
            " backends: the SQLite pass runs it"),
)

VERSIONS = 16
WORKERS = 2
MODEL_MB = 2.5  # what each of these forests holds loaded: its served form's arrays, mapped
BUDGET_MB = 8  # three of them per worker
PROBE = [0.3, 0.6, 0.9]


def forest(seed: int) -> RandomForestRegressor:
    rng = np.random.default_rng(seed)
    return RandomForestRegressor(n_estimators=10, random_state=seed).fit(rng.random((4000, 3)), rng.random(4000))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("model-memory")
    with fresh_database(root) as database_url, server.running(
            database_url, root, ADMIN_TOKEN, workers=WORKERS, env={"MODEL_MEMORY_MB": BUDGET_MB}) as (live,):
        expected = {}
        for number in range(1, VERSIONS + 1):
            model = forest(number)
            uploaded = requests.post(f"{live.url}/models/many/versions", headers=live.headers, timeout=120,
                                     files={"artifact": ("m.joblib", artifact_bytes(model))})
            assert uploaded.status_code == 201, uploaded.text
            expected[number] = float(model.predict([PROBE])[0])
        promoted = requests.post(f"{live.url}/models/many/versions/1/promote", json={}, headers=live.headers,
                                 timeout=60)
        assert promoted.status_code == 200
        yield live, expected, worker_rss_mb(live)


def worker_rss_mb(live) -> list[float]:
    return [w.memory_info().rss / 2**20 for w in psutil.Process(live.process.pid).children()]


def scrape(live) -> dict[str, float]:
    text = requests.get(f"{live.url}/metrics", timeout=30).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def test_versions_asked_for_at_once_are_answered_right_within_each_workers_budget(live):
    live, expected, before = live
    wrong, failed = [], []

    def client(seed: int) -> None:
        pick = random.Random(seed)
        session = requests.Session()
        for _ in range(40):
            number = pick.randint(1, VERSIONS)
            answer = session.post(f"{live.url}/models/many/{number}/predict", json={"instances": [PROBE]}, timeout=60)
            if answer.status_code != 200:
                failed.append((number, answer.status_code))
            elif answer.json()["predictions"][0] != expected[number]:
                wrong.append(number)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)

    assert failed == [] and wrong == []
    samples = scrape(live)
    assert samples["registry_model_cache_budget_bytes"] == BUDGET_MB * 2**20
    assert samples["registry_model_cache_bytes"] <= WORKERS * (BUDGET_MB + MODEL_MB) * 2**20
    assert samples["registry_model_cache_evictions_total"] > 0 and samples["registry_model_cache_misses_total"] > 0
    # Holding all sixteen at once would take each worker 40 MB past where it started. Within the budget it
    # grows by the budget and the loads in flight on its four threads; what a worker unpickled to make a
    # served form is given back.
    after = worker_rss_mb(live)
    grown = [a - b for a, b in zip(sorted(after), sorted(before))]
    assert all(growth < VERSIONS * MODEL_MB for growth in grown), (before, after)


def mapped_forms(pid: int) -> dict[str, set[tuple[str, str]]]:
    """The served-form files a process maps: by form (the artifact's sha256), each array file's name and inode."""
    found: dict[str, set[tuple[str, str]]] = {}
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and "/forms/" in fields[5] and fields[5].endswith(".npy"):
            *_, sha256, name = fields[5].split("/")
            found.setdefault(sha256, set()).add((name, fields[4]))
    return found


def test_every_worker_maps_the_one_copy_of_a_served_version_on_this_machine(live):
    live, expected, _ = live
    session = requests.Session()
    for _ in range(20):  # the aliased version, answered by whichever worker takes each request
        answer = session.post(f"{live.url}/models/many/production/predict", json={"instances": [PROBE]}, timeout=60)
        assert answer.status_code == 200 and answer.json()["predictions"][0] == expected[1]
    aliased = requests.get(f"{live.url}/models/many/versions/1", headers=live.headers, timeout=30).json()["sha256"]
    maps = [mapped_forms(worker.pid) for worker in psutil.Process(live.process.pid).children()]
    # An alias's version is loaded by every worker, and each maps the same files (same inodes): one copy
    # in the page cache, where each worker used to unpickle its own.
    assert len(maps) == WORKERS and all(aliased in found for found in maps), maps
    assert maps[0][aliased] and all(found[aliased] == maps[0][aliased] for found in maps)
