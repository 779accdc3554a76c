"""The image run as deploy/kubernetes/kserve/cluster-serving-runtime.yaml runs it (issue 70, item 7): the
runtime's arguments with KServe's ``{{.Name}}`` filled in, its environment, its port, and an XGBoost file in a
read-only /mnt/models as KServe's storage initializer leaves it. It answers KServe's V2 route with the
booster's own numbers, and a restarted container (the pod's /data kept) serves the same version.
"""
import uuid

import numpy as np
import pytest
import requests
import xgboost
import yaml

from bench.harness import containers
from config import BASE_DIR
from tests.databases import BACKEND
from tests.e2e.podman_images import built_or_fail

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="the runtime serves its own SQLite: the SQLite pass runs it")

RUNTIME = BASE_DIR / "deploy" / "kubernetes" / "kserve" / "cluster-serving-runtime.yaml"
NAME = "iris-xgboost"  # the InferenceService's name, which KServe puts where the runtime says {{.Name}}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    built_or_fail(lambda: {"base": containers.ensure_base_image(), "registry": containers.build_image(containers.IMAGE)})
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4)).astype(np.float32)
    booster = xgboost.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3},
                            xgboost.DMatrix(X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)), 10)
    models = tmp_path_factory.mktemp("mnt-models")
    booster.save_model(models / "model.json")
    models.chmod(0o755), (models / "model.json").chmod(0o644)
    (container,) = yaml.safe_load(RUNTIME.read_text())["spec"]["containers"]
    command = tuple(arg.replace("{{.Name}}", NAME) for arg in container["args"])
    env = {variable["name"]: variable["value"] for variable in container["env"]}
    started = []
    volume = f"kserve-runtime-{uuid.uuid4().hex[:8]}"  # /data: a pod's emptyDir, kept when its container restarts

    def start():
        for earlier in started:  # a restart: the container before it stops first
            earlier.stop()
        started.append(containers.run(containers.IMAGE, f"kserve-runtime-{uuid.uuid4().hex[:8]}", env=env, command=command,
                                      volume=volume,
                                      port=container["ports"][0]["containerPort"],
                                      options=("--volume", f"{models}:/mnt/models:ro")))
        started[-1].wait_ready()
        return started[-1]

    try:
        yield start, booster, X
    finally:
        for running in started:
            running.remove()
        containers.remove_volume(volume)


def infer(container, X) -> requests.Response:
    body = {"inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}],
            "outputs": [{"name": "predict_proba"}]}
    return requests.post(f"{container.url}/v2/models/{NAME}/infer", json=body, timeout=60)


def test_the_runtime_answers_kserve_s_v2_route_with_the_booster_s_numbers(served):
    start, booster, X = served
    container = start()

    answer = infer(container, X[:20])

    assert answer.status_code == 200, answer.text
    outputs = {output["name"]: output for output in answer.json()["outputs"]}
    expected = booster.predict(xgboost.DMatrix(X[:20]))
    assert outputs["predict_proba"]["data"] == pytest.approx(expected.ravel().tolist(), rel=1e-5)
    assert requests.get(f"{container.url}/v2/health/ready", timeout=10).status_code == 200
    assert '"version": 1' in container.logs() and '"created": true' in container.logs()


def test_a_restarted_runtime_serves_the_same_version_of_the_same_file(served):
    start, booster, X = served
    again = start()

    assert '"version": 1' in again.logs() and '"created": false' in again.logs()
    assert infer(again, X[:1]).json()["model_version"] == "1"
