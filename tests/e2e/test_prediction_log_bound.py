"""The prediction log's byte bound under real gunicorn workers (issue 48): every answer of a flood logged
by two workers, the log ends within PREDICTION_LOG_MAX_MB, a quiet model keeps all its rows, and the
bound is printed at start."""
import threading

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import server
from bench.harness.models import PROBE_ROW, scaled_sum, upload
from bench.harness.traffic import move
from tests.databases import fresh_database
from tests.e2e.conftest import ADMIN_TOKEN
from tests.helpers import wait_for

MAX_MB = 0.1
BODY = {"instances": [PROBE_ROW] * 100}  # ~3 KB logged a request: the bound is some thirty of them
DEADLINE = 60


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("log-bound")
    with fresh_database(root) as database_url, server.running(
            database_url, root, ADMIN_TOKEN, workers=2,
            env={"PREDICTION_LOG_SAMPLE": 1, "PREDICTION_LOG_MAX_MB": MAX_MB}) as (live,):
        for name in ("hot", "quiet"):
            assert upload(live, name, scaled_sum(1)).status_code == 201
            move(live, "promote", name, 1)
        yield live


def figures(live) -> dict:
    """Every sample of /metrics by (name, model label)."""
    text = requests.get(f"{live.url}/metrics", timeout=30).text
    return {(s.name, s.labels.get("model", s.labels.get("reason"))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_flood_from_two_workers_ends_within_the_bound_and_spares_the_quiet_model(live):
    assert f"PREDICTION_LOG_MAX_MB={MAX_MB:g} of logged requests" in live.log_path.read_text()
    for _ in range(10):
        assert requests.post(f"{live.url}/models/quiet/production/predict", json={"instances": [PROBE_ROW]},
                             timeout=30).status_code == 200

    def flood():
        with requests.Session() as session:
            for _ in range(100):
                assert session.post(f"{live.url}/models/hot/production/predict", json=BODY, timeout=60).status_code == 200

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def settled():
        found = figures(live)
        done = found[("registry_prediction_log_written_total", None)] + found[("registry_prediction_log_dropped_total", None)]
        return found if done >= 410 and found.get(("registry_prediction_log_rows", "quiet")) == 10 else None

    found = wait_for(settled, "every answer to be written", DEADLINE)
    assert found[("registry_prediction_log_dropped_total", None)] == 0
    logged = found[("registry_prediction_log_bytes", "hot")] + found[("registry_prediction_log_bytes", "quiet")]
    assert logged <= MAX_MB * 1024 * 1024, found
    assert found[("registry_prediction_log_pruned_total", "bytes")] >= 400 - found[("registry_prediction_log_rows", "hot")]
