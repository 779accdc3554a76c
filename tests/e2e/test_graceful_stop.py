"""SIGTERM on a real gunicorn, as `make run` and the container serve: /readyz answers 503 at once, the request
in flight finishes, what the worker counted and queued (rollout figures, the prediction log) is written,
and the server exits 0. And the start: the port opens only once the aliased models are loaded."""
import signal

import pytest
import requests
from sqlalchemy import create_engine, func, select

from bench.harness import server
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.traffic import move
from registry.monitoring.tables import LoggedPrediction
from registry.tables import RolloutStats
from tests.databases import fresh_database
from tests.e2e.conftest import ADMIN_TOKEN
from tests.e2e.rollouts import change
from tests.e2e.slow_requests import TrickledPost, wait_until_master_said_not_ready, wait_until_workers_told_to_stop

DRAIN_SECONDS = 2  # time to see the master's not-ready line and ask /readyz before the stop
REQUESTS = 30
# No alias poll (and so no periodic flush of the figures) during the test: only the worker's exit writes them.
NO_POLL_SECONDS = 600


def test_sigterm_finishes_the_request_in_flight_writes_what_the_worker_holds_and_exits_0(tmp_path):
    with fresh_database(tmp_path) as url:
        env = server.service_env(url, tmp_path / "artifacts", ADMIN_TOKEN, DRAIN_SECONDS=DRAIN_SECONDS,
                                 PREDICTION_LOG_SAMPLE=1)
        server.migrate(env)
        live = server.start(env, tmp_path, workers=1, refresh_seconds=NO_POLL_SECONDS)
        try:
            sent = _served_through_a_rollout(live)
            slow = TrickledPost(live.url, "/models/stopping/production/predict", {"instances": [PROBE_ROW] * 2000})
            slow.start()

            live.process.send_signal(signal.SIGTERM)
            wait_until_master_said_not_ready(live.log_path.read_text)
            assert requests.get(f"{live.url}/readyz", timeout=10).status_code == 503  # not ready first
            wait_until_workers_told_to_stop(live.log_path.read_text)  # past the drain
            status, body = slow.finish()
            exit_status = live.process.wait(timeout=60)
        finally:
            live.stop()

        assert status == 200 and len(body["predictions"]) == 2000
        assert exit_status == 0, live.log_path.read_text()[-4000:]
        assert _written(url) == (sent + 1, sent + 1)  # every request's figures and log entry, the slow one's too


def _served_through_a_rollout(live) -> int:
    """A model whose production alias runs a canary, and REQUESTS predictions through it; how many were sent."""
    for factor in (1, 2):
        assert upload(live, "stopping", scaled_sum(factor)).status_code == 201
    move(live, "promote", "stopping", 1)
    change(live, "stopping", "start", {"canary": {"version": 2, "percent": 50}})
    with requests.Session() as session:
        for _ in range(REQUESTS):
            answer = session.post(f"{live.url}/models/stopping/production/predict", json={"instances": [PROBE_ROW]}, timeout=30)
            assert answer.json()["predictions"][0] == pytest.approx(expected_prediction(answer.json()["version"]))
    return REQUESTS


def _written(url: str) -> tuple[int, int]:
    """The requests the rollout's figures count, and the prediction log's entries, as the database has them."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            counted = connection.execute(select(func.sum(RolloutStats.requests))).scalar()
            logged = connection.execute(select(func.count()).select_from(LoggedPrediction)).scalar()
    finally:
        engine.dispose()
    return counted, logged


def test_a_restarted_server_opens_its_port_only_once_the_aliased_models_are_loaded(tmp_path):
    with fresh_database(tmp_path) as url:
        env = server.service_env(url, tmp_path / "artifacts", ADMIN_TOKEN)
        server.migrate(env)
        first = server.start(env, tmp_path, workers=1)
        try:
            assert upload(first, "warm", scaled_sum(2)).status_code == 201
            move(first, "promote", "warm", 1)
        finally:
            first.stop()

        again = server.start(env, tmp_path, workers=1)
        try:
            answer = requests.post(f"{again.url}/models/warm/production/predict", json={"instances": [PROBE_ROW]}, timeout=30)
            log = again.log_path.read_text()
        finally:
            again.stop()

    assert answer.status_code == 200 and answer.json()["predictions"][0] == pytest.approx(expected_prediction(2))
    loaded, listening = log.find("aliased models loaded in"), log.find("Listening at:")
    assert -1 < loaded < listening, log[-3000:]  # a connection before the load is refused, never held through it
