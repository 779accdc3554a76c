"""A PostgreSQL outage under a real gunicorn (reads need a token): predictions on loaded aliases keep
answering 200 with a token verified before the outage, `/readyz` stays 200 and says "degraded",
`/metrics` shows the database down, writes are 503; all recover without a restart.

The database sits behind a TCP proxy the test cuts, as a stopped server refuses connections. Only
the PostgreSQL pass runs it: a SQLite file cannot go down this way (its faults are in
test_sqlite_file_gone).
"""
import time

import pytest
import requests
from sqlalchemy.engine import make_url

from bench.harness import server
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.tcp_proxy import CuttableProxy
from bench.harness.traffic import move
from tests.databases import BACKEND, fresh_database
from tests.e2e.conftest import ADMIN_TOKEN
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="a database server's outage: the PostgreSQL pass runs it")

OUTAGE_SECONDS = 6  # longer than the token cache's 5 s of trust while the database answers
DEADLINE = 30


@pytest.fixture(scope="module")
def outage(tmp_path_factory):
    """A gunicorn (one worker: the token cache is per worker) on a database behind a cuttable proxy,
    serving ``kept`` version 1 as production; and a reader token it has verified."""
    root = tmp_path_factory.mktemp("outage")
    with fresh_database(root) as database_url:
        url = make_url(database_url)
        with CuttableProxy((url.host, url.port or 5432)) as proxy:
            proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            env = server.service_env(proxied, root / "artifacts", ADMIN_TOKEN, REQUIRE_AUTH_FOR_READS="true")
            server.migrate(env)
            live = server.start(env, root, workers=1)
            try:
                assert upload(live, "kept", scaled_sum(2)).status_code == 201
                move(live, "promote", "kept", 1)
                created = requests.post(f"{live.url}/tokens", json={"name": "app", "role": "reader"}, headers=live.headers, timeout=30)
                assert created.status_code == 201, created.text
                yield live, proxy, {"Authorization": f"Bearer {created.json()['token']}"}
            finally:
                live.stop()


def predict(live, reader) -> requests.Response:
    return requests.post(f"{live.url}/models/kept/production/predict", json={"instances": [PROBE_ROW]},
                         headers=reader, timeout=30)


def test_predictions_go_on_readiness_says_degraded_and_writes_are_503_through_an_outage(outage):
    live, proxy, reader = outage
    assert predict(live, reader).status_code == 200  # the worker verifies the token while the database answers
    created = requests.post(f"{live.url}/tokens", json={"name": "prometheus", "role": "metrics"}, headers=live.headers,
                            timeout=30)
    assert created.status_code == 201, created.text
    scraper = {"Authorization": f"Bearer {created.json()['token']}"}  # /metrics needs it where reads need a token
    assert requests.get(f"{live.url}/metrics", headers=scraper, timeout=30).status_code == 200  # verified before

    proxy.cut()
    try:
        answers, started = [], time.monotonic()
        while time.monotonic() - started < OUTAGE_SECONDS:
            answers.append(predict(live, reader))
        ready = requests.get(f"{live.url}/readyz", timeout=30)
        v2_ready = requests.get(f"{live.url}/v2/health/ready", timeout=30)
        metrics = requests.get(f"{live.url}/metrics", headers=scraper, timeout=30).text
        write = upload(live, "kept", scaled_sum(3))
    finally:
        proxy.restore()

    assert answers and [a.status_code for a in answers if a.status_code != 200] == []
    assert all(a.json()["predictions"][0] == pytest.approx(expected_prediction(2)) for a in answers)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "degraded" and ready.json()["checks"]["database"] is False
    assert "database" in ready.json()["problems"]
    assert v2_ready.json() == {"ready": True}
    assert 'registry_dependency_up{dependency="database"} 0.0' in metrics
    assert write.status_code == 503 and "database" in write.json()["detail"]

    # Recovery needs no restart.
    wait_for(lambda: requests.get(f"{live.url}/readyz", timeout=30).json()["status"] == "ready", "readiness", DEADLINE)
    assert upload(live, "kept", scaled_sum(3)).status_code == 201
    assert predict(live, reader).status_code == 200


def test_a_token_never_verified_before_the_outage_is_503_not_401(outage):
    live, proxy, _ = outage
    proxy.cut()
    try:
        unknown = predict(live, {"Authorization": "Bearer mr_never-seen-before"})
    finally:
        proxy.restore()
    assert unknown.status_code == 503  # cannot be checked: never a wrong 401 for a token that may be valid
