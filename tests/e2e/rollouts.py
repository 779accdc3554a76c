"""Driving rollouts on a live registry over HTTP: changes, keyed requests and the figures."""
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

from registry.serving.routing import key_share
from tests.helpers import PROBE_ROW

STICKY_HEADER = "X-User-Id"
# Each worker's alias watcher notes when it last followed a change of the registry (it reads the
# prediction log's shares then, after the aliases and rollouts).
FOLLOWED = "registry_prediction_log_shares_read_timestamp_seconds"
# Figures are flushed every second by each process; reading them back waits at most this long.
FIGURES_DEADLINE_SECONDS = 15


@dataclass
class Step:
    """One rollout change: when it was asked for, when it returned, which versions may answer after it."""

    started: float
    returned: float
    versions: set[int]


def change(live, name: str, action: str, body: dict | None = None, alias: str = "production") -> dict:
    """``start`` (PUT), ``abort`` (DELETE) or ``complete`` (POST …/promote) a rollout; the answer's body."""
    url = f"{live.url}/models/{name}/aliases/{alias}/rollout"
    if action == "start":
        response = requests.put(url, json=body, headers=live.headers, timeout=60)
    elif action == "abort":
        response = requests.delete(url, json=body or {}, headers=live.headers, timeout=60)
    else:
        response = requests.post(f"{url}/promote", json=body or {}, headers=live.headers, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"{action} rollout on {name} failed: {response.status_code} {response.text}")
    return response.json()


def expected_version(name: str, key: str, percent: float, primary: int, canary: int) -> int:
    """The version a keyed request must get, by the same stable hash every worker uses."""
    return canary if key_share(name, "production", key) < percent else primary


def keyed_versions(urls: list[str], keys: list[str], threads: int = 8) -> dict[str, list[tuple[int, str, float]]]:
    """POST the probe row once per key to each url, on fresh connections (so every worker answers some).

    Returns, per key, ``(version, route, prediction)`` of every answer; a failed request raises.
    """
    def ask(job):
        url, key = job
        response = requests.post(url, json={"instances": [PROBE_ROW]}, timeout=30,
                                 headers={STICKY_HEADER: key, "Connection": "close"})
        response.raise_for_status()
        body = response.json()
        assert response.headers["X-Model-Version"] == str(body["version"])
        return key, (body["version"], response.headers["X-Model-Route"], body["predictions"][0])

    answers: dict[str, list] = {key: [] for key in keys}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for key, answer in pool.map(ask, [(url, key) for key in keys for url in urls]):
            answers[key].append(answer)
    return answers


def figures_once(live, name: str, done, alias: str = "production") -> dict:
    """GET the rollout until ``done(figures)`` holds (the figures lag by the flush period); the figures."""
    deadline = time.monotonic() + FIGURES_DEADLINE_SECONDS
    while True:
        figures = requests.get(f"{live.url}/models/{name}/aliases/{alias}/rollout", timeout=10).json()
        if done(figures) or time.monotonic() > deadline:
            return figures
        time.sleep(0.2)


def followed_at(live) -> dict[int, float]:
    """pid -> when that worker last followed a change of the registry (read every model's share), from /metrics."""
    text = requests.get(f"{live.url}/metrics", timeout=30).text
    return {int(sample.labels["pid"]): sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == FOLLOWED}

