"""/metrics on a real gunicorn (2 workers, multiprocess metrics) shows the series of the versions that
some live worker holds now, not of every version ever served: archived and evicted ones leave it."""
import os
import signal
import time

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import server
from bench.harness.models import artifact_bytes
from tests.databases import fresh_database
from tests.helpers import close_app, make_app, scaled_sum, upload_ok, wait_for

ADMIN_TOKEN = "e2e-metrics-token"
WORKERS = 2
CACHE_SIZE = 2  # versions a worker keeps loaded beside production: each of these models holds about 408 bytes
MODEL_MEMORY_MB = 0.0014  # 1,468 bytes: production and two more
VERSIONS = 12
PROBE = {"instances": [[1.0, 1.0, 1.0]]}
DEADLINE = 30  # seconds: a bound on waiting for every worker's refresh, so a broken server fails


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("bounded-metrics")
    with fresh_database(root) as database_url:
        env = server.service_env(database_url, root / "artifacts", ADMIN_TOKEN, MODEL_MEMORY_MB=MODEL_MEMORY_MB)
        server.migrate(env)
        app = make_app(database_url, root / "artifacts", ADMIN_TOKEN=ADMIN_TOKEN)
        try:
            client, headers = app.test_client(), {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            for factor in range(1, VERSIONS + 1):
                upload_ok(client, headers, "churn", scaled_sum(factor))
            assert client.post("/models/churn/versions/1/promote", json={}, headers=headers).status_code == 200
        finally:
            close_app(app)
        live = server.start(env, root, workers=WORKERS)
        try:
            yield live
        finally:
            live.stop()


def versions_in_scrape(live) -> tuple[set[str], set[str], int]:
    """Versions of ``churn`` named by any series, those ``registry_model_loaded`` holds, and the scrape's size."""
    text = requests.get(f"{live.url}/metrics", timeout=10).text
    named, held = set(), set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") == "churn" and "version" in sample.labels:
                named.add(sample.labels["version"])
                if family.name == "registry_model_loaded" and sample.value > 0:
                    held.add(sample.labels["version"])
    return named, held, len(text.encode())


def test_series_of_versions_no_worker_holds_leave_the_scrape(live):
    for version in range(1, VERSIONS + 1):
        for _ in range(2 * WORKERS):  # each version answered, most likely by every worker
            answered = requests.post(f"{live.url}/models/churn/{version}/predict", json=PROBE, timeout=30)
            assert answered.status_code == 200
    archived = requests.delete(f"{live.url}/models/churn/versions/{VERSIONS}", headers=live.headers, timeout=30)
    assert archived.status_code == 200

    deadline = time.monotonic() + DEADLINE
    while True:
        named, held, size = versions_in_scrape(live)
        if str(VERSIONS) not in named or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # every worker drops the archived version at its next refresh

    assert str(VERSIONS) not in named  # archived: gone from every worker
    assert named == held  # a version's series are shown exactly while some live worker holds it
    assert "1" in held  # production
    # Each worker holds production and at most CACHE_SIZE more: the scrape is bounded by that.
    assert len(held) <= 1 + WORKERS * CACHE_SIZE < VERSIONS - 1


def test_the_start_says_the_bounds_the_workers_run_with(live):
    log = live.log_path.read_text()
    assert f"bounds: MODEL_MEMORY_MB={MODEL_MEMORY_MB:g} of loaded models per worker, MAX_MODEL_MB=" in log
    assert f"{WORKERS} workers" in log


def tally(live) -> tuple[float, float]:
    """Answers of ``tally`` version 1 in the scrape, and how many live workers hold it."""
    text = requests.get(f"{live.url}/metrics", timeout=10).text
    found = {"registry_predictions_total": 0.0, "registry_model_loaded": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in found and sample.labels.get("model") == "tally" and sample.labels.get("status") in (None, "200"):
                found[sample.name] = sample.value
    return found["registry_predictions_total"], found["registry_model_loaded"]


def test_every_workers_counts_add_up_and_outlive_a_killed_worker(live):
    files = {"artifact": ("m.joblib", artifact_bytes(scaled_sum(3)))}
    assert requests.post(f"{live.url}/models/tally/versions", files=files, headers=live.headers, timeout=30).status_code == 201
    sent = 0

    def both_workers_hold_it():
        nonlocal sent
        for _ in range(5):
            assert requests.post(f"{live.url}/models/tally/1/predict", json=PROBE, timeout=30).status_code == 200
            sent += 1
        return tally(live)[1] == WORKERS

    wait_for(both_workers_hold_it, "both workers to answer with the version")
    # Each worker shares its counts within about a second.
    wait_for(lambda: tally(live) == (sent, WORKERS), "every worker's counts in the scrape")

    workers = {child.pid for child in psutil.Process(live.process.pid).children()}
    os.kill(next(iter(workers)), signal.SIGKILL)
    wait_for(lambda: len({child.pid for child in psutil.Process(live.process.pid).children()} - workers) == 1,
             "gunicorn to replace the killed worker")
    assert tally(live) == (sent, 1)  # the dead worker's counts stay; it holds nothing any more
