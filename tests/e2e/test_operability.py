"""Operability on a real gunicorn with three workers: /metrics from the first scrape, alias delete on every worker."""
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.harness.models import PROBE_ROW, scaled_sum, upload
from bench.harness.traffic import CLOCK_SLACK_SECONDS, move

FAMILIES = {"registry_predictions", "registry_predict_seconds", "registry_model_loads", "registry_model_load_failures",
            "registry_model_cache_evictions", "registry_alias_swaps", "registry_alias_version"}


def test_the_first_scrape_before_any_traffic_declares_every_family_once(live_registry):
    response = requests.get(f"{live_registry.url}/metrics", timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"].lower().count("charset=utf-8") == 1
    families = list(text_string_to_metric_families(response.text))
    names = [family.name for family in families]
    assert set(names) >= FAMILIES and len(names) == len(set(names))
    predictions = next(f for f in families if f.name == "registry_predictions")
    assert predictions.samples == []  # no traffic yet, and still the family is there


def test_a_deleted_alias_answers_404_on_every_worker_within_the_refresh_window(live_registry):
    name = "deleted"
    assert upload(live_registry, name, scaled_sum(1)).status_code == 201
    move(live_registry, "promote", name, 1)
    predict_url = f"{live_registry.url}/models/{name}/production/predict"

    def statuses():
        # fresh connections: the master hands them to whichever worker accepts first, so many reach each worker
        with ThreadPoolExecutor(max_workers=6) as pool:
            return set(pool.map(lambda _: requests.post(
                predict_url, json={"instances": [PROBE_ROW]}, timeout=30, headers={"Connection": "close"},
            ).status_code, range(60)))

    assert statuses() == {200}  # every worker serves the alias from its snapshot
    deleted = requests.delete(f"{live_registry.url}/models/{name}/aliases/production", headers=live_registry.headers, timeout=30)
    returned = time.monotonic()
    assert deleted.status_code == 200 and deleted.json()["action"] == "delete"
    time.sleep(live_registry.refresh_seconds + CLOCK_SLACK_SECONDS)
    assert time.monotonic() - returned >= live_registry.refresh_seconds

    assert statuses() == {404}
    assert requests.get(f"{live_registry.url}/models/{name}/aliases", timeout=10).json() == {}
