"""A real gunicorn (3 workers, a local store) whose stored copy of an aliased version rots while a cached
form serves it: the background scrub finds it, every worker's /readyz warns, /metrics counts it, and a
signed ``artifact.damaged`` webhook arrives, once, while the version goes on answering."""
import pytest
import requests

from bench.harness import server
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.webhook_receiver import Receiver, poll
from tests.databases import fresh_database
from tests.e2e.conftest import ADMIN_TOKEN

SETTINGS = {"ARTIFACT_SCRUB_SECONDS": "1", "WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_POLL_SECONDS": "0.1"}


@pytest.fixture(scope="module")
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("scrub")
    with fresh_database(root) as url, server.running(url, root, ADMIN_TOKEN, env=SETTINGS) as (instance,):
        instance.store_dir = root / "artifacts"
        yield instance


def damage_warnings(live, sha256: str, probes: int = 6) -> list[str]:
    """The /readyz warnings naming ``sha256`` over several probes (so every worker, most likely): all of
    them must name it for any to be returned."""
    found = []
    for _ in range(probes):
        ready = requests.get(f"{live.url}/readyz", timeout=30)
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        named = [warning for warning in ready.json()["warnings"] if sha256 in warning]
        if not named:
            return []
        found += named
    return found


def metric(live, name: str) -> float | None:
    for line in requests.get(f"{live.url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def test_a_rotten_copy_behind_an_alias_is_found_said_everywhere_and_sent_once(live, receiver):
    hook = requests.post(f"{live.url}/webhooks", json={"url": receiver.url("scrub"), "events": ["artifact.damaged"]},
                         headers=live.headers, timeout=30)
    assert hook.status_code == 201, hook.text
    receiver.trust("scrub", hook.json()["secret"])
    created = upload(live, "kept", scaled_sum(3))
    assert created.status_code == 201, created.text
    sha256 = created.json()["sha256"]
    promoted = requests.post(f"{live.url}/models/kept/versions/1/promote", json={}, headers=live.headers, timeout=30)
    assert promoted.status_code == 200, promoted.text
    poll(lambda: (metric(live, 'registry_artifact_scrub_checks_total{status="ok"}') or 0) >= 1, timeout=60)  # intact
    assert damage_warnings(live, sha256) == []

    (live.store_dir / "sha256" / sha256[:2] / sha256).write_bytes(b"bit rot")

    warnings = poll(lambda: damage_warnings(live, sha256), timeout=60)
    assert all("(kept v1) is damaged" in warning for warning in warnings)
    # /readyz says what the worker read at once; /metrics has it from the worker's next flush, about a second later
    poll(lambda: metric(live, "registry_artifacts_damaged") == 1.0, timeout=60)
    sent = poll(lambda: receiver.events("scrub", "artifact.damaged"), timeout=60)
    assert [event["data"] for event in sent] == [
        {"sha256": sha256, "status": "damaged", "store": str(live.store_dir), "versions": ["kept v1"]}]
    for _ in range(6):
        answer = requests.post(f"{live.url}/models/kept/production/predict", json={"instances": [PROBE_ROW]}, timeout=30)
        assert answer.status_code == 200 and answer.json()["predictions"] == [pytest.approx(expected_prediction(3))]
    # Another worker's counts reach /metrics at its next flush, about a second later.
    checks = poll(lambda: metric(live, 'registry_artifact_scrub_checks_total{status="damaged"}'), timeout=60)
    poll(lambda: metric(live, 'registry_artifact_scrub_checks_total{status="damaged"}') >= checks + 2, timeout=60)
    assert len(receiver.events("scrub", "artifact.damaged")) == 1  # checked again, not sent again
