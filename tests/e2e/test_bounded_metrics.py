"""/metrics on a real gunicorn (2 workers, multiprocess metrics) shows the series of the versions that
some live worker holds now, not of every version ever served: archived and evicted ones leave it."""
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import server
from tests.databases import fresh_database
from tests.helpers import close_app, make_app, scaled_sum, upload_ok

ADMIN_TOKEN = "e2e-metrics-token"
WORKERS = 2
CACHE_SIZE = 2
VERSIONS = 12
PROBE = {"instances": [[1.0, 1.0, 1.0]]}
DEADLINE = 30  # seconds: a bound on waiting for every worker's refresh, so a broken server fails


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("bounded-metrics")
    with fresh_database(root) as database_url:
        env = server.service_env(database_url, root / "artifacts", ADMIN_TOKEN, MODEL_CACHE_SIZE=CACHE_SIZE)
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
    assert "bounds: MAX_MODEL_MB=" in log and f"{WORKERS} workers" in log
