"""A stalled object store (its server stopped with SIGSTOP: connections open, nothing answered) against a
real gunicorn on a real SeaweedFS: readiness probes answer within a second, degraded, saying the store
did not answer in time, and predictions of loaded models are answered beside them as ever.

Each request is given the image's HEALTHCHECK timeout (5 s): a probe that waited on the store (15 s
each, before) fails it, and so does a prediction queued behind such probes on the workers' threads.
"""
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bench.harness import s3_server, server
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from tests.databases import BACKEND, fresh_database

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="the object store stalls, not the database: the SQLite pass runs it",
)

ADMIN_TOKEN = "e2e-stalled-store-token"
HEALTHCHECK_TIMEOUT_SECONDS = 5
PROBES = 16  # twice the threads of the two workers
RECOVERY_SECONDS = 60


@pytest.fixture(scope="module")
def stalled_fleet(tmp_path_factory):
    """gunicorn (2 workers × 4 threads) whose artifact store is a SeaweedFS of its own; ``served`` is on
    production and loaded in every worker."""
    root = tmp_path_factory.mktemp("stalled-store")
    with s3_server.running(root / "s3") as s3:
        s3.create_bucket("stalled")
        with fresh_database(root) as database_url, server.running(
            database_url, root, ADMIN_TOKEN, workers=2, env=s3.env("stalled")
        ) as (live,):
            assert upload(live, "served", scaled_sum(3)).status_code == 201
            promoted = requests.post(f"{live.url}/models/served/versions/1/promote", json={}, headers=live.headers,
                                     timeout=30)
            assert promoted.status_code == 200, promoted.text
            for _ in range(8):  # on every worker
                assert _predict(live).status_code == 200
            yield live, s3


def _predict(live) -> requests.Response:
    return requests.post(f"{live.url}/models/served/production/predict", json={"instances": [PROBE_ROW]},
                         timeout=HEALTHCHECK_TIMEOUT_SECONDS)


def _probe(live) -> requests.Response:
    return requests.get(f"{live.url}/readyz", timeout=HEALTHCHECK_TIMEOUT_SECONDS)


def test_probes_and_predictions_are_answered_while_the_store_is_stalled(stalled_fleet):
    live, s3 = stalled_fleet
    os.killpg(s3.process.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(PROBES + 8) as pool:
            probes = [pool.submit(_probe, live) for _ in range(PROBES)]
            predictions = [pool.submit(_predict, live) for _ in range(8)]
            probes, predictions = [f.result() for f in probes], [f.result() for f in predictions]
        again = _probe(live)  # while the first check still hangs
    finally:
        os.killpg(s3.process.pid, signal.SIGCONT)

    # Every probe is answered 200 (loaded models are served). In each worker the probe that asked the
    # store says, after 0.8 s, that it did not answer; those that came while it waited say what was
    # known before (or that the worker's first check has no answer yet); the probes after, at once,
    # that the store did not answer.
    for answer in [*probes, again]:
        assert answer.status_code == 200, answer.text
    stalled = [answer.json() for answer in [*probes, again] if answer.json()["status"] == "degraded"]
    assert again.json() in stalled and len(stalled) >= 2, [answer.json() for answer in probes]
    assert "did not answer within 0.8 s" in again.json()["problems"]["artifact_store"]
    for body in stalled:
        assert body["checks"]["artifact_store"] is False, body
        why = body["problems"]["artifact_store"]
        assert "did not answer within 0.8 s" in why or "has not answered this process's first check" in why, body
    for answer in predictions:
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [pytest.approx(expected_prediction(3))]
    _wait_until_ready(live)


def _wait_until_ready(live) -> None:
    """The store answers again: the probes say ready (the stalled check is abandoned, a new one asked)."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        body = requests.get(f"{live.url}/readyz", timeout=HEALTHCHECK_TIMEOUT_SECONDS).json()
        if body["status"] == "ready":
            return
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
