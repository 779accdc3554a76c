"""The fleet of deploy/compose.yaml, brought up with podman-compose on images built here (PostgreSQL,
SeaweedFS and nginx substituted through the compose file's variables): an upload and a promote through
nginx, gRPC calls through nginx (grpc_pass) to both replicas, request ids passed through, bodies over a route's limit refused by nginx, X-Forwarded-Proto kept
only from a trusted balancer, failover while a replica is down, and a rolling replacement of both
replicas under prediction load that fails no request.

The fleet is one per module (about a minute to start); the images are built once per machine
(bench/harness/compose_fleet.py). The replicas serve PostgreSQL, their own: the SQLite pass runs it.
"""
import http.client
import re
import threading
import uuid

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton

from bench.harness import compose_fleet, containers
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.traffic import Load
from registry_client import RegistryClient
from tests.databases import BACKEND
from tests.e2e.podman_images import built_or_fail

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="the fleet brings its own PostgreSQL: the SQLite pass runs it",
)

MODEL = "fleet"
LOAD_THREADS = 4
MB = 1024 * 1024
UPLOAD_MB, PREDICT_MB = 40, 4  # small limits, so that bodies over them are cheap to announce


@pytest.fixture(scope="module")
def fleet():
    """deploy/compose.yaml up, with a model uploaded and promoted through nginx; down with its volumes after."""
    built_or_fail(compose_fleet.ensure_images)
    # nginx itself (127.0.0.1 in its container) stands for a trusted balancer in front.
    fleet = compose_fleet.ComposeFleet(max_upload_mb=UPLOAD_MB, max_predict_mb=PREDICT_MB, trusted_balancers="127.0.0.1")
    try:
        fleet.up()
        uploaded = upload(fleet, MODEL, scaled_sum(2))
        assert uploaded.status_code == 201, uploaded.text
        # As a CI job promotes: the client sends a 503 again after its Retry-After (a store that answered the
        # upload was once too slow to answer the promote's first read, on a busy machine).
        RegistryClient(fleet.url, fleet.admin_token, timeout=30).promote(MODEL, 1)
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


def test_grpc_calls_through_nginx_are_answered_by_both_replicas(fleet):
    probe = triton.InferInput("input-0", [1, 3], "FP64")
    probe.set_data_from_numpy(np.array([PROBE_ROW]))
    client = triton.InferenceServerClient(fleet.grpc)

    answers = [client.infer(MODEL, [probe], model_version="production") for _ in range(20)]

    assert [float(answer.as_numpy("predict")[0]) for answer in answers] == pytest.approx([expected_prediction(2)] * 20)
    served_by = {fleet.address(replica) for replica in compose_fleet.REPLICAS}
    logs = fleet.logs("nginx")
    assert all(f"upstream={address}:8001 upstream_status=200" in logs for address in served_by)  # both answered


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
        logged = len(fleet.logs("nginx"))
        containers.podman("start", stopping)
        fleet.wait_ready("registry-1")
        fleet.wait_sent_to("registry-1", after=logged)

    assert [answer.status_code for answer in answers] == [200] * 30
    assert uploaded.status_code == 201, uploaded.text  # a write too: refused, it never reached registry-1


def test_replacing_both_replicas_one_at_a_time_under_load_fails_no_request(fleet):
    with Load([f"{fleet.url}/models/{MODEL}/production/predict"], threads=LOAD_THREADS) as load:
        for replica in compose_fleet.REPLICAS:
            fleet.replace(replica)

    failed = [answer for answer in load.answers if answer.status != 200]
    lines = fleet.logs("nginx").splitlines()
    unusual = [line for line in lines if re.search(r'" 5\d\d |\[(error|warn)\]', line) and "(111: Connection refused)" not in line]
    refused = sum("(111: Connection refused)" in line for line in lines)
    assert not failed, (f"{len(failed)} of {len(load.answers)} failed, first: {failed[:3]}\nnginx: {refused} connections "
                        "refused, and:\n" + "\n".join(unusual[-40:]))
    assert [answer.prediction for answer in load.answers] == pytest.approx([expected_prediction(2)] * len(load.answers))
    assert len(load.answers) > 100


@pytest.mark.parametrize("method, path, length", [
    ("POST", f"/models/{MODEL}/production/predict", PREDICT_MB * MB + 1),
    ("POST", f"/v2/models/{MODEL}/infer", PREDICT_MB * MB + 1),
    ("PATCH", f"/models/{MODEL}", PREDICT_MB * MB + 1),
    ("POST", f"/models/{MODEL}/versions", (UPLOAD_MB + 8) * MB + 1),
], ids=["predict", "v2-infer", "other", "upload"])
def test_a_body_over_its_routes_limit_is_refused_by_nginx_before_it_is_sent(fleet, method, path, length):
    """Only the headers are sent: nginx answers from the announced length, never waiting for the body."""
    refused = _announced(fleet, method, path, length)

    assert refused.status == 413
    assert refused.getheader("Content-Type") == "application/problem+json"
    assert "over the limit of this route" in refused.read().decode()


def test_an_upload_over_the_predict_limit_passes_nginx_to_the_replica(fleet):
    sent = requests.post(f"{fleet.url}/models/{MODEL}/versions", files={"file": ("m.joblib", b"\0" * (PREDICT_MB * MB * 2))},
                         headers=fleet.headers, timeout=60)

    assert sent.status_code != 413 and 400 <= sent.status_code < 500, sent.text  # the replica's refusal of the file
    assert "over the limit of this route" not in sent.text


def test_x_forwarded_proto_is_kept_from_a_trusted_balancer_only(fleet):
    from_client = requests.get(f"{fleet.url}/healthz", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    request = "GET /healthz HTTP/1.0\r\nHost: registry\r\nX-Forwarded-Proto: https\r\n\r\n"
    from_balancer = containers.podman("exec", fleet.container("nginx"), "bash", "-c",
                                      f"exec 3<>/dev/tcp/127.0.0.1/80; printf '{request}' >&3; cat <&3").stdout

    assert from_client.status_code == 200 and "Strict-Transport-Security" not in from_client.headers
    assert " 200 " in from_balancer.splitlines()[0]
    assert "strict-transport-security:" in from_balancer.lower()  # the replica saw https


def test_nginx_answers_without_naming_its_version(fleet):
    answered = requests.get(f"{fleet.url}/healthz", timeout=10)
    refused = _announced(fleet, "POST", f"/models/{MODEL}/production/predict", PREDICT_MB * MB + 1)

    assert answered.headers["Server"] == "nginx"  # server_tokens off: no version to look vulnerabilities up by
    assert refused.getheader("Server") == "nginx"


def _announced(fleet, method: str, path: str, length: int) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", fleet.port, timeout=10)
    connection.putrequest(method, path)
    for name, value in {**fleet.headers, "Content-Type": "application/json", "Content-Length": str(length)}.items():
        connection.putheader(name, value)
    connection.endheaders()
    return connection.getresponse()


def _predict(session: requests.Session, fleet, headers: dict | None = None) -> requests.Response:
    return session.post(f"{fleet.url}/models/{MODEL}/production/predict", json={"instances": [PROBE_ROW]},
                        headers=headers, timeout=30)
