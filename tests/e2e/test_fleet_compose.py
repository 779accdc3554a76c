"""The fleet of deploy/compose.yaml, brought up with podman-compose on images built here (PostgreSQL,
SeaweedFS and nginx substituted through the compose file's variables): an upload and a promote through
nginx, request ids passed through, failover while a replica is down, and a rolling replacement of both
replicas under prediction load that fails no request.

The fleet is one per module (about a minute to start); the images are built once per machine
(bench/harness/compose_fleet.py). The replicas serve PostgreSQL, their own: the SQLite pass runs it.
"""
import threading
import uuid

import pytest
import requests

from bench.harness import compose_fleet, containers
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.traffic import Load
from tests.databases import BACKEND
from tests.e2e.podman_images import built_or_fail

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="the fleet brings its own PostgreSQL: the SQLite pass runs it")

MODEL = "fleet"
LOAD_THREADS = 4


@pytest.fixture(scope="module")
def fleet():
    """deploy/compose.yaml up, with a model uploaded and promoted through nginx; down with its volumes after."""
    built_or_fail(compose_fleet.ensure_images)
    fleet = compose_fleet.ComposeFleet()
    try:
        fleet.up()
        uploaded = upload(fleet, MODEL, scaled_sum(2))
        assert uploaded.status_code == 201, uploaded.text
        promoted = requests.post(f"{fleet.url}/models/{MODEL}/versions/1/promote", json={}, headers=fleet.headers, timeout=30)
        assert promoted.status_code == 200, promoted.text
        yield fleet
    finally:
        fleet.down()


def test_an_upload_promoted_through_nginx_is_served_by_both_replicas(fleet):
    with requests.Session() as session:
        answers = [_predict(session, fleet) for _ in range(20)]

    assert all(answer.status_code == 200 for answer in answers)
    assert [answer.json()["predictions"][0] for answer in answers] == pytest.approx([expected_prediction(2)] * 20)
    served_by = {fleet.address(replica) for replica in compose_fleet.REPLICAS}
    assert all(f"upstream={address}:8000 upstream_status=200" in fleet.logs("nginx") for address in served_by)  # both answered


def test_a_request_id_passes_through_nginx_and_nginx_makes_one_when_none_is_sent(fleet):
    sent = f"fleet-{uuid.uuid4().hex}"
    with requests.Session() as session:
        echoed = _predict(session, fleet, headers={"X-Request-ID": sent})
        made = _predict(session, fleet)

    assert echoed.headers["X-Request-ID"] == sent
    assert f"request_id={sent}" in fleet.logs("nginx")
    assert len(made.headers["X-Request-ID"]) == 32  # nginx's $request_id, which its access log shows too
    assert f"request_id={made.headers['X-Request-ID']}" in fleet.logs("nginx")


def test_while_one_replica_refuses_connections_every_request_is_answered_by_the_other(fleet):
    stopping = fleet.container("registry-1")
    stop = threading.Thread(target=containers.podman, args=("stop", "--time", str(compose_fleet.STOP_SECONDS), stopping),
                            kwargs={"timeout": compose_fleet.STOP_SECONDS + 30})
    stop.start()  # SIGTERM, as `docker stop` sends it; the restart policy leaves a stopped container alone
    fleet.wait_logged("registry-1", "port closed; exiting in")  # stopped, refusing until LINGER_SECONDS end
    try:
        with requests.Session() as session:
            answers = [_predict(session, fleet) for _ in range(30)]
        uploaded = upload(fleet, MODEL, scaled_sum(3))
    finally:
        stop.join()
        assert containers.podman("inspect", "--format", "{{.State.ExitCode}}", stopping).stdout.strip() == "0"
        containers.podman("start", stopping)
        fleet.wait_ready("registry-1")
        fleet.wait_sent_to("registry-1")

    assert [answer.status_code for answer in answers] == [200] * 30
    assert uploaded.status_code == 201, uploaded.text  # a write too: refused, it never reached registry-1


def test_replacing_both_replicas_one_at_a_time_under_load_fails_no_request(fleet):
    with Load([f"{fleet.url}/models/{MODEL}/production/predict"], threads=LOAD_THREADS) as load:
        for replica in compose_fleet.REPLICAS:
            fleet.replace(replica)

    failed = [answer for answer in load.answers if answer.status != 200]
    assert not failed, f"{len(failed)} of {len(load.answers)} failed, first: {failed[:3]}\n{fleet.logs('nginx')[-3000:]}"
    assert [answer.prediction for answer in load.answers] == pytest.approx([expected_prediction(2)] * len(load.answers))
    assert len(load.answers) > 100


def _predict(session: requests.Session, fleet, headers: dict | None = None) -> requests.Response:
    return session.post(f"{fleet.url}/models/{MODEL}/production/predict", json={"instances": [PROBE_ROW]},
                        headers=headers, timeout=30)
