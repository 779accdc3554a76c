"""The container image, built from the repository's Dockerfile and run with real podman: the
container quick start of docs/deploy.md (ready, upload, promote, predict) as a non-root user, a forest answered exactly by
the tree walker the image built, the data kept across a restart on the same volume with a read-only
root filesystem, a graceful stop that finishes a request in flight, a small volume on which the
prediction log stops before the registry's writes fail, and starts that must fail with one line and no
server.

One image build serves the whole module (podman reuses its cached layers: after a code change only the
code's layers are built again); the local base image is made with debootstrap when the machine has none.
The image's default database is SQLite under /data: the SQLite pass runs this module.
"""
import re
import subprocess
import time
import uuid

import numpy as np
import pytest
import requests
from sklearn.ensemble import RandomForestClassifier

from bench.harness import containers
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from tests.databases import BACKEND
from tests.e2e.podman_images import built_or_fail
from tests.e2e.slow_requests import TrickledPost, wait_until_master_said_not_ready, wait_until_workers_told_to_stop

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="the image serves SQLite under /data by default: the SQLite pass runs it",
)

IMAGE = containers.IMAGE
MODEL = "quickstart"
NON_ROOT_UID = "10001"
DRAIN_SECONDS = 2


@pytest.fixture(scope="module")
def image():
    """The service's image, built once for the module on the local base image."""
    built_or_fail(lambda: {"base": containers.ensure_base_image(), "registry": containers.build_image(IMAGE)})
    return IMAGE


@pytest.fixture(scope="module")
def volume():
    """A named volume for /data, removed with the module."""
    name = f"registry-test-{uuid.uuid4().hex[:8]}"
    yield name
    containers.remove_volume(name)


@pytest.fixture(scope="module")
def started():
    """``started(image, **kw)``: a detached container (containers.run), removed with the module."""
    running = []

    def start(image, **kwargs):
        container = containers.run(image, f"registry-test-{uuid.uuid4().hex[:8]}", **kwargs)
        running.append(container)
        return container

    yield start
    for container in running:
        container.remove()


@pytest.fixture(scope="module")
def quick_start(image, volume, started):
    """docs/deploy.md's one container: ``run -p PORT:8000 -v VOLUME:/data IMAGE``, ready, with a model uploaded
    and promoted through it; the seconds from ``podman run`` to the first correct prediction."""
    began = time.monotonic()
    container = started(image, volume=volume)
    container.wait_ready()
    ready_seconds = time.monotonic() - began
    token = re.search(r"Admin token: (mr_\S+)", container.logs()).group(1)
    headers = {"Authorization": f"Bearer {token}"}
    assert upload(container, MODEL, scaled_sum(2), headers=headers).status_code == 201
    promoted = requests.post(f"{container.url}/models/{MODEL}/versions/1/promote", json={}, headers=headers, timeout=30)
    assert promoted.status_code == 200, promoted.text
    assert _predicted(container) == pytest.approx(expected_prediction(2))
    print(f"\npodman run to ready: {ready_seconds:.1f} s; to the first correct prediction: {time.monotonic() - began:.1f} s")
    return container, token


@pytest.fixture(scope="module")
def restarted(image, volume, started, quick_start):
    """The quick start stopped (exit status 0), then a new container on the same volume with a read-only root
    filesystem and a tmpfs on /tmp, as a hardened deployment runs it."""
    first, _ = quick_start
    assert first.stop() == 0, first.logs()[-4000:]
    container = started(image, volume=volume, env={"DRAIN_SECONDS": DRAIN_SECONDS, "GRACEFUL_TIMEOUT": 30},
                        options=("--read-only", "--tmpfs", "/tmp"))
    container.wait_ready()
    return container


def test_the_quick_start_serves_a_promoted_upload_as_a_non_root_user(image, quick_start):
    container, token = quick_start

    assert _predicted(container) == pytest.approx(expected_prediction(2))
    assert _in(container, "cat", "/data/admin_token") == token  # the one line the log gives to read it again
    assert container.logs().count(token) == 1  # printed once
    assert _in(container, "id", "-u") == NON_ROOT_UID
    assert set(containers.podman("top", container.name, "huser").stdout.split()[1:]) == {NON_ROOT_UID}  # every process
    assert containers.podman("healthcheck", "run", container.name, check=False).returncode == 0
    labels = containers.podman("image", "inspect", "--format", "{{json .Labels}}", image).stdout
    revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert f'"org.opencontainers.image.revision":"{revision}"' in labels
    assert '"org.opencontainers.image.version"' in labels and '"org.opencontainers.image.source"' in labels


def test_the_images_own_tree_walker_answers_a_forest_exactly_as_scikit_learn(quick_start):
    container, token = quick_start
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, X[:, 0] + rng.normal(size=300) > 0)
    headers = {"Authorization": f"Bearer {token}"}
    assert upload(container, "forest", forest, headers=headers).status_code == 201
    rows = np.round(rng.normal(size=(50, 4)), 6)

    answer = requests.post(f"{container.url}/models/forest/1/predict",
                           json={"instances": rows.tolist(), "return_proba": True}, timeout=30)

    assert answer.status_code == 200, answer.text
    assert answer.json()["probabilities"] == forest.predict_proba(rows).tolist()


def test_boosted_files_are_served_exactly_by_an_image_that_has_neither_library(quick_start):
    """XGBoost's JSON and LightGBM's text files are read and walked by the registry itself: the image
    installs neither library, and answers each bit for bit as the library does here (issue 42)."""
    import lightgbm
    import xgboost

    container, token = quick_start
    headers = {"Authorization": f"Bearer {token}"}
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1},
                            xgboost.DMatrix(X, label=y, feature_names=list("abcd")), 20)
    gbm = lightgbm.train({"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1},
                         lightgbm.Dataset(X, label=y, feature_name=list("abcd")), 20)
    files = {"xgb": bytes(booster.save_raw("json")), "lgbm": gbm.model_to_string().encode()}
    rows = np.round(rng.normal(size=(50, 4)), 6)
    expected = {"xgb": booster.predict(xgboost.DMatrix(rows, feature_names=list("abcd"))),
                "lgbm": gbm.predict(rows, num_threads=1)}
    for name, data in files.items():
        uploaded = requests.post(f"{container.url}/models/{name}/versions", files={"artifact": ("model", data)},
                                 headers=headers, timeout=60)
        assert uploaded.status_code == 201, uploaded.text

        answer = requests.post(f"{container.url}/models/{name}/1/predict",
                               json={"instances": rows.tolist(), "return_proba": True}, timeout=30)

        assert answer.status_code == 200, answer.text
        assert [p[1] for p in answer.json()["probabilities"]] == expected[name].astype(np.float64).tolist(), name
    for library in ("xgboost", "lightgbm"):
        missing = containers.podman("exec", container.name, "/opt/venv/bin/python", "-c", f"import {library}",
                                    check=False)
        assert missing.returncode != 0 and "ModuleNotFoundError" in missing.stderr, library


def test_a_restart_on_the_same_volume_keeps_the_data_with_a_read_only_root(quick_start, restarted):
    _, token = quick_start

    assert _predicted(restarted) == pytest.approx(expected_prediction(2))
    versions = requests.get(f"{restarted.url}/models/{MODEL}/versions", timeout=30).json()["items"]
    assert [v["version"] for v in versions] == [1]
    headers = {"Authorization": f"Bearer {token}"}  # the admin token kept in /data, not made again
    assert upload(restarted, MODEL, scaled_sum(3), headers=headers).status_code == 201  # /data is writable
    assert token not in restarted.logs()
    refused = containers.podman("exec", restarted.name, "touch", "/app/written", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def test_sigterm_during_a_slow_request_makes_it_not_ready_finishes_the_request_and_exits_0(restarted):
    rows = [PROBE_ROW] * 2000  # a body big enough to send in two parts with a pause between them
    request = TrickledPost(restarted.url, f"/models/{MODEL}/production/predict", {"instances": rows})
    request.start()

    restarted.signal("TERM")
    wait_until_master_said_not_ready(restarted.logs)
    assert requests.get(f"{restarted.url}/readyz", timeout=10).status_code == 503  # not ready first
    wait_until_workers_told_to_stop(restarted.logs)  # past the drain
    status, body = request.finish()

    assert status == 200 and body["predictions"] == pytest.approx([expected_prediction(2)] * len(rows))
    assert restarted.wait() == 0
    assert "not ready; stopping in 2 s" in restarted.logs()


def test_a_command_after_the_image_name_runs_with_the_secrets_read_from_their_files(image, tmp_path):
    for name, value in (("admin_token", "from-a-docker-secret"), ("secret_key", "a-key-from-a-file")):
        (tmp_path / name).write_text(value + "\n")
        (tmp_path / name).chmod(0o644)  # the container's user reads it
    show = ("import os; from config import settings; s = settings().access; "
            "print(s.admin_token, s.secret_key, 'ADMIN_TOKEN' in os.environ, 'SECRET_KEY' in os.environ)")

    ran = containers.run_to_exit(image, "python3", "-c", show,
                                 env={"ADMIN_TOKEN_FILE": "/run/secrets/admin_token",
                                      "SECRET_KEY_FILE": "/run/secrets/secret_key"},
                                 options=("--volume", f"{tmp_path / 'admin_token'}:/run/secrets/admin_token:ro",
                                          "--volume", f"{tmp_path / 'secret_key'}:/run/secrets/secret_key:ro"))

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == "from-a-docker-secret a-key-from-a-file False False"  # read, not exported


def test_the_trainers_command_line_and_its_client_run_in_the_image(image):
    ran = containers.run_to_exit(image, "python3", "-m", "trainers", "--help", env={"ADMIN_TOKEN": "t"})

    assert ran.returncode == 0, ran.stderr
    assert "retrain" in ran.stdout and "import-mlflow" in ran.stdout


@pytest.mark.parametrize("env, options, line", [
    ({"ADMIN_TOKEN_FILE": "/run/secrets/admin_token"}, (),
     "ADMIN_TOKEN_FILE=/run/secrets/admin_token: cannot read it (No such file or directory)"),
    ({"ADMIN_TOKEN_FILE": "/run/secrets"}, ("--tmpfs", "/run/secrets"),
     "ADMIN_TOKEN_FILE=/run/secrets: cannot read it (Is a directory)"),
    ({"ADMIN_TOKEN": "t", "ARTIFACT_ROOT": "ftp://x"}, (),
     ("ARTIFACT_ROOT=ftp://x: ftp:// is not a store this release can use; set it to a directory or to "
      "s3://bucket/prefix (any S3-compatible store: docs/scaling.md)")),
    ({"ADMIN_TOKEN": "t", "DATABASE_URL": "postgresql+psycopg://registry:secret@127.0.0.1:9/registry"}, (),
     "DATABASE_URL=postgresql+psycopg://registry:***@127.0.0.1:9/registry: the database does not answer"),
], ids=["missing-secret-file", "unreadable-secret-file", "unknown-artifact-root", "unreachable-database"])
def test_a_start_that_cannot_work_stops_with_one_line_and_no_server(image, env, options, line):
    stopped = containers.run_to_exit(image, env=env, options=options)

    assert stopped.returncode == 1
    assert len(stopped.stderr.splitlines()) == 1 and stopped.stderr.startswith(line), stopped.stderr
    assert "secret" not in stopped.stderr.replace("/run/secrets", "")  # a password never reaches a log
    assert "gunicorn" not in stopped.stdout + stopped.stderr


def test_a_volume_running_short_stops_the_log_before_any_registry_write_fails(image, started):
    """A real small volume: /data on a 64 MB tmpfs, every answer logged under a bound larger than the
    disk. The log stops at PREDICTION_LOG_MIN_FREE_MB free (32), every prediction still answers, and the
    registry's own writes (an upload, a promotion) go on in the space the log left (issue 48)."""
    container = started(image, env={"PREDICTION_LOG_SAMPLE": 1, "PREDICTION_LOG_MAX_MB": 1000,
                                    "PREDICTION_LOG_MIN_FREE_MB": 32},
                        options=("--tmpfs", "/data:rw,size=64m,U"))  # U: owned by the image's user
    container.wait_ready()
    token = re.search(r"Admin token: (mr_\S+)", container.logs()).group(1)
    headers = {"Authorization": f"Bearer {token}"}
    assert upload(container, MODEL, scaled_sum(1), headers=headers).status_code == 201
    assert requests.post(f"{container.url}/models/{MODEL}/versions/1/promote", json={}, headers=headers,
                         timeout=30).status_code == 200
    body = {"instances": [[float(i), 2.0, 3.0] for i in range(2000)]}  # ~80 KB logged per answer
    session = requests.Session()

    def flood(count: int) -> set[int]:
        return {session.post(f"{container.url}/models/{MODEL}/production/predict", json=body, timeout=60).status_code
                for _ in range(count)}

    answered, deadline = set(), time.monotonic() + 180
    while not _paused(container):
        assert time.monotonic() < deadline, f"the log never stopped: {_free_mb(container):.1f} MB free"
        answered |= flood(20)
    free_at_pause = _free_mb(container)
    answered |= flood(100)  # nothing of these is logged

    assert answered == {200}
    # A writer looks at the free space before each part it writes (1 MB, twice that for a moment with SQLite's
    # WAL): the four workers' writers together pass the floor by 8 MB at most. Before, a whole batch went at once
    # (100 answers: 8 MB here), and a run found 21.4 MB free.
    assert 24 <= free_at_pause and free_at_pause - _free_mb(container) < 2, (free_at_pause, _free_mb(container))
    ready = requests.get(f"{container.url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert any("under PREDICTION_LOG_MIN_FREE_MB=32: the prediction log records nothing" in w
               for w in ready.json()["warnings"]), ready.json()
    assert upload(container, MODEL, scaled_sum(2), headers=headers).status_code == 201  # the registry's writes go on
    assert requests.post(f"{container.url}/models/{MODEL}/versions/2/promote", json={}, headers=headers,
                         timeout=30).status_code == 200
    deadline = time.monotonic() + 30  # every worker follows the move within ALIAS_REFRESH_SECONDS
    while _predicted(container) != pytest.approx(expected_prediction(2)):
        assert time.monotonic() < deadline, "a worker still serves version 1"


def _paused(container) -> bool:
    scraped = requests.get(f"{container.url}/metrics", timeout=30).text
    return "registry_prediction_log_paused 1.0" in scraped


def _free_mb(container) -> float:
    return int(_in(container, "df", "-B1", "--output=avail", "/data").split()[-1]) / 2**20


def _predicted(container) -> float:
    answer = requests.post(f"{container.url}/models/{MODEL}/production/predict", json={"instances": [PROBE_ROW]}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"][0]


def _in(container, *command: str) -> str:
    return containers.podman("exec", container.name, *command).stdout.strip()
