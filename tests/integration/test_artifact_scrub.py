"""The artifact scrub: the store's copy of a served version is checked, not only the caches that serve
it; a damaged copy behind an alias is found while a cached form answers for it, and /metrics, /readyz,
a webhook and the CLI say so; the caches keep their copy of it until it is repaired; the scrub reads
at the rate it is given, and one process of a fleet scrubs."""
import json

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from api.settings import settings_of
from registry.artifacts.pacing import Throttle
from registry.db import db
from registry.events.tables import WebhookEvent
from registry.integrity.tables import ArtifactCheck
from tests.helpers import PROBE_ROW, artifact_bytes, scaled_sum, upload_ok

PUBLIC_URL = "https://93.184.215.14/hooks/registry"  # a literal public address: no DNS needed


@pytest.fixture
def damaged(app, client, ci, admin):
    """``m`` v1 behind ``production``, answered once (its form made); then its stored file rots. Its sha256."""
    created = client.post("/webhooks", json={"url": PUBLIC_URL, "events": ["artifact.damaged"]}, headers=admin)
    assert created.status_code == 201, created.get_json()
    upload_ok(client, ci, "m", scaled_sum(1))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert client.post("/models/m/production/predict", json={"instances": [PROBE_ROW]}).status_code == 200
    sha256 = client.get("/models/m/versions/1").get_json()["sha256"]
    store = app.extensions["model_registry"].store
    store.path_for(sha256).write_bytes(b"bit rot")
    return sha256


def scrub(app, code=0) -> str:
    result = app.test_cli_runner().invoke(args=["artifacts", "scrub"])
    assert result.exit_code == code, result.output
    return result.output


def events(app) -> list[dict]:
    with app.app_context():
        rows = db.session.execute(select(WebhookEvent).where(WebhookEvent.type == "artifact.damaged")).scalars()
        return [json.loads(row.body)["data"] for row in rows]


def damaged_gauge() -> float:
    return REGISTRY.get_sample_value("registry_artifacts_damaged")


def test_a_damaged_copy_behind_an_alias_is_found_while_a_cached_form_serves_it(app, client, damaged):
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and not any(damaged in warning for warning in ready["warnings"])  # unnoticed

    output = scrub(app, code=1)

    assert f"damaged {damaged}: m v1" in output and "1 damaged or missing" in output
    assert client.post("/models/m/production/predict", json={"instances": [PROBE_ROW]}).status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    warning, = [w for w in ready.get_json()["warnings"] if damaged in w]
    assert "(m v1) is damaged" in warning and "re-upload the original file" in warning
    assert damaged_gauge() == 1
    assert events(app) == [{"sha256": damaged, "status": "damaged", "store": str(settings_of(app).storage.artifact_root),
                            "versions": ["m v1"]}]
    scrub(app, code=1)
    assert len(events(app)) == 1  # sent when found, not at every pass


def test_the_caches_keep_the_last_good_copy_of_a_damaged_artifact_until_it_is_repaired(app, client, ci, damaged):
    scrub(app, code=1)
    upload_ok(client, ci, "m", scaled_sum(2))
    assert client.post("/models/m/versions/2/promote", json={}, headers=ci).status_code == 200  # v1 served no more
    forms = app.extensions["model_registry"].forms
    forms.budget_bytes = 0

    forms.prune()

    assert forms.path_for(damaged).is_dir()  # the form of v1: the last good copy on this machine
    app.extensions["model_registry"].store.put(artifact_bytes(scaled_sum(1)))  # the original bytes: repaired
    output = scrub(app)
    assert "0 damaged or missing" in output
    assert damaged_gauge() == 0
    assert not any(damaged in w for w in client.get("/readyz").get_json()["warnings"])
    forms.prune()
    assert not forms.path_for(damaged).exists()
    with app.app_context():  # intact and served by nothing: forgotten
        assert db.session.get(ArtifactCheck, damaged) is None


def test_a_missing_copy_is_named_as_missing(app, client, damaged):
    app.extensions["model_registry"].store.path_for(damaged).unlink()

    assert f"missing {damaged}: m v1" in scrub(app, code=1)
    assert events(app)[0]["status"] == "missing"


def test_the_scrub_reads_no_faster_than_its_rate():
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(1024 * 1024, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        throttle(512 * 1024)  # 5 MB read at once at 1 MB/s: 5 s in all

    assert now[0] == pytest.approx(5.0)
    Throttle(0, clock=lambda: now[0], sleep=sleep)(10**9)
    assert now[0] == pytest.approx(5.0)  # no rate, no wait
