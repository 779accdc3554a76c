"""deploy/kubernetes/overlays/development played by ``podman kube play`` (bench/harness/kube_play.py): two
registry replicas, PostgreSQL and SeaweedFS from the same manifests a cluster gets, images substituted as
an operator would. The quick start works against it (an upload and a promote on one replica, the same
answer from the other), the secrets reach the server as files and never as its environment, and the
container's root filesystem is read-only as the manifest says.

Played once per module (about a minute); the images are the compose fleet's, built once per machine.
"""
import base64

import pytest
import requests

from bench.harness import kube_play
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.compose_fleet import ensure_images
from tests.databases import BACKEND
from tests.e2e.podman_images import built_or_fail

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="the development profile brings its own PostgreSQL: the SQLite pass runs it",
)

MODEL = "kube"


class Replica:
    """One replica's address and the development profile's admin token, as bench.harness.models.upload takes them."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def played():
    built_or_fail(ensure_images)
    play = kube_play.KubePlay()
    try:
        play.up()
        yield play
    finally:
        play.down()


def admin_token(play) -> str:
    (secret,) = [d for d in play.documents if d["kind"] == "Secret" and d["metadata"]["name"].startswith("model-registry-secrets")]
    return base64.b64decode(secret["data"]["admin-token"]).decode()


def test_the_quick_start_works_across_both_replicas_of_the_development_profile(played):
    first, second = (Replica(url, admin_token(played)) for url in played.replica_urls())

    uploaded = upload(first, MODEL, scaled_sum(2))
    assert uploaded.status_code == 201, uploaded.text
    promoted = requests.post(f"{first.url}/models/{MODEL}/versions/1/promote", json={"reason": "first release"},
                             headers=first.headers, timeout=60)
    assert promoted.status_code == 200, promoted.text

    for replica in (second, first):  # the other replica reads the same database and the same store
        answer = requests.post(f"{replica.url}/models/{MODEL}/production/predict", json={"instances": [PROBE_ROW]}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == 1
        assert answer.json()["predictions"] == pytest.approx([expected_prediction(2)])


def test_each_replica_reads_its_secrets_from_files_and_writes_only_its_volumes(played):
    container = "model-registry-pod-0-registry"
    environment = kube_play.containers.podman("exec", container, "env").stdout
    token = admin_token(played)

    assert "ADMIN_TOKEN_FILE=/run/secrets/model-registry/admin-token" in environment
    assert token not in environment  # the value stays in the file
    assert "postgresql+psycopg://" not in environment
    refused = kube_play.containers.podman("exec", container, "touch", "/app/written", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    kept = kube_play.containers.podman("exec", container, "touch", "/data/written", check=False)
    assert kept.returncode == 0, kept.stderr
