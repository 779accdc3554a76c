"""A fleet that shares only PostgreSQL and an S3 server (SeaweedFS): three replicas, each in a network
namespace of its own with its own disk, reaching both over TCP through proxies on the host. The fleet
has a PostgreSQL server and an S3 server of its own, so both can really be stopped and started.

Upload on one, promote on another, predict on the third; a replica killed mid-upload leaves nothing
half-written; the S3 server killed and PostgreSQL stopped under prediction load fail no prediction on a
loaded alias, refuse writes with a named 503, and heal without a restart; a new replica with an empty
cache is not ready while the store is down, and becomes ready once it has fetched what it serves."""
import signal
import subprocess
import threading
import time

import numpy as np
import obstore
import psutil
import pytest
import requests
from sklearn.tree import DecisionTreeRegressor

from bench.harness import fleet as fleets
from bench.harness import s3_server, server
from bench.harness.models import PROBE_ROW, artifact_bytes, expected_prediction, scaled_sum, upload
from bench.harness.traffic import Load
from tests.databases import BACKEND
from tests.e2e.conftest import ADMIN_TOKEN, ADMISSION_OPEN
from tests.helpers import wait_for
from tests.postgres_server import find_pg_ctl, throwaway_server

pytestmark = pytest.mark.skipif(BACKEND != "postgresql",
                                reason="a fleet shares PostgreSQL: the PostgreSQL pass runs it")


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of the fleet's own, so that the test can stop it and start it again."""
    with throwaway_server(find_pg_ctl()) as server:
        yield server


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, postgres):
    root = tmp_path_factory.mktemp("fleet")
    with s3_server.running(root / "s3") as s3, \
            fleets.running(postgres.url, s3, root, ADMIN_TOKEN, count=3,
                           extra_env=ADMISSION_OPEN) as running:
        yield running


def predict(replica, ref="production") -> requests.Response:
    return requests.post(f"{replica.live.url}/models/f/{ref}/predict", json={"instances": [PROBE_ROW]}, timeout=30)


def promote(replica, version: int) -> requests.Response:
    return requests.post(f"{replica.live.url}/models/f/versions/{version}/promote", json={},
                         headers=replica.live.headers, timeout=60)


def flask_cli(fleet, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(server.BIN / "flask"), "--app", "wsgi", *args], cwd=server.BASE_DIR,
                          env=fleet.host_env(), capture_output=True, text=True, timeout=300)


def test_upload_on_one_promote_on_another_predict_on_the_third(fleet):
    first, second, third = fleet.replicas[:3]
    assert len({r.place.address for r in fleet.replicas}) == 3  # three places (namespaces, where allowed)
    for factor in (1, 2):
        assert upload(first.live, "f", scaled_sum(factor)).status_code == 201

    assert promote(second, 2).status_code == 200

    answer = predict(third)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["version"], answer.json()["predictions"][0]) == (2, pytest.approx(expected_prediction(2)))
    sha = requests.get(f"{third.live.url}/models/f/versions/2", timeout=30).json()["sha256"]
    assert all((r.cache_dir / "sha256" / sha[:2] / sha).is_file() for r in (second, third))  # each cached it
    assert not (first.root / "artifacts").exists()


def big_tree() -> DecisionTreeRegressor:
    """A regressor whose file (~30 MB) is sent to S3 in several parts."""
    rng = np.random.default_rng(1)
    return DecisionTreeRegressor(random_state=0).fit(rng.random((200_000, 3)), rng.random(200_000))


def test_a_replica_killed_mid_upload_leaves_no_version_without_its_object_and_gc_takes_the_rest(fleet):
    victim, witness = fleet.replicas[0], fleet.replicas[1]
    before = requests.get(f"{witness.live.url}/models/f/versions", timeout=30).json()["total"]
    body = artifact_bytes(big_tree())
    sent = threading.Event()

    def chunks():
        for start in range(0, len(body), 1 << 20):
            yield body[start:start + (1 << 20)]
        sent.set()

    def send():
        boundary = "fleet-boundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"artifact\"; filename=\"big.joblib\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode()

        def multipart():
            yield head
            yield from chunks()
            yield f"\r\n--{boundary}--\r\n".encode()

        try:
            requests.post(f"{victim.live.url}/models/big/versions", data=multipart(), timeout=120,
                          headers={**victim.live.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        except requests.RequestException:
            pass  # the replica died under it

    uploading = threading.Thread(target=send)
    uploading.start()
    assert sent.wait(120)
    time.sleep(0.5)  # the worker is checking the file or streaming it to the store
    for process in [psutil.Process(victim.live.process.pid), *psutil.Process(victim.live.process.pid).children()]:
        process.send_signal(signal.SIGKILL)
    uploading.join(120)

    verified = flask_cli(fleet, "artifacts", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr  # every version's object is whole
    collected = flask_cli(fleet, "artifacts", "gc", "--grace-minutes", "0")
    assert collected.returncode == 0, collected.stderr
    versions = requests.get(f"{witness.live.url}/models/big/versions", timeout=30)
    referenced = {v["sha256"] for v in versions.json()["items"]} if versions.status_code == 200 else set()
    listing = fleet.s3.client(fleets.BUCKET, "artifacts")
    stored = {meta["path"].rsplit("/", 1)[-1] for page in obstore.list(listing, prefix="sha256/") for meta in page}
    f_versions = requests.get(f"{witness.live.url}/models/f/versions", timeout=30).json()
    assert stored == referenced | {v["sha256"] for v in f_versions["items"]}
    assert f_versions["total"] == before

    restarted = fleet.add(root=victim.root)  # the same disk: its node cache as the kill left it
    assert predict(restarted).json()["version"] == 2
    fleet.replicas.remove(victim)


def test_store_and_database_outages_under_load_fail_no_prediction_and_heal_without_restarts(fleet, postgres):
    replicas = list(fleet.replicas)
    urls = [f"{r.live.url}/models/f/production/predict" for r in replicas]
    with Load(urls, threads=6) as load:
        fleet.s3.stop(kill=True)
        refused = upload(replicas[0].live, "f", scaled_sum(7))
        assert refused.status_code == 503 and "s3://fleet/artifacts" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) > 0
        degraded = requests.get(f"{replicas[1].live.url}/readyz", timeout=30)
        assert degraded.status_code == 200 and "artifact_store" in degraded.json()["problems"]

        newcomer = fleet.add(wait=False)  # an empty cache, and nowhere to fill it from
        wait_for(lambda: _readyz(newcomer) == 503, "the newcomer to answer /readyz, not ready")
        time.sleep(2)
        assert _readyz(newcomer) == 503

        fleet.s3.start()
        wait_for(lambda: _readyz(newcomer) == 200, "the newcomer to be ready once the store is back", 60)
        assert predict(newcomer).json()["version"] == 2
        wait_for(lambda: upload(replicas[0].live, "f", scaled_sum(8)).status_code == 201, "uploads to resume", 30)

        postgres.stop()
        time.sleep(2)  # predictions keep coming while the database is gone
        refused = promote(replicas[1], 1)
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        postgres.start()
        wait_for(lambda: promote(replicas[1], 2).status_code == 200, "writes to resume", 60)

    answers = [a for a in load.answers]
    assert len(answers) > 100
    assert [a for a in answers if a.status != 200] == []
    assert {a.version for a in answers} == {2}


def _readyz(replica) -> int:
    try:
        return requests.get(f"{replica.live.url}/readyz", timeout=10).status_code
    except requests.ConnectionError:
        return 0
