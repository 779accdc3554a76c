"""The Open Inference Protocol over gRPC against a real gunicorn (3 workers sharing GRPC_BIND), driven by
clients written by others: tritonclient's gRPC client here, KServe's InferenceGRPCClient in a venv of its
own (.venv-kserve: the kserve package pins versions the shared venv must keep) as a subprocess.

Every model kind answers the same numbers over gRPC as over V2 REST, for versions given as numbers and
aliases; an alias follows a hot swap, and gRPC callers during swaps see no failed call; a canary splits gRPC
calls by the sticky key in their metadata, and a shadow is mirrored from them; malformed calls get
the status that says what is wrong, and a message, never INTERNAL; where reads need a token, the metadata
``authorization`` carries it, scoped per model as on REST.
"""
import json
import subprocess
import threading
import time

import grpc
import lightgbm
import numpy as np
import pandas as pd
import pytest
import requests
import tritonclient.grpc as triton
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier
from tritonclient.utils import InferenceServerException

from api.grpc import protocol
from bench.harness import server
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.traffic import CLOCK_SLACK_SECONDS, allowed_versions, run_moves
from config import BASE_DIR
from tests.databases import BACKEND, fresh_database
from tests.e2e.conftest import ADMIN_TOKEN, ADMISSION_OPEN
from tests.e2e.rollouts import change, figures_once
from tests.helpers import wait_for

KSERVE_PYTHON = BASE_DIR / ".venv-kserve" / "bin" / "python"
KSERVE_PEER = BASE_DIR / "tests" / "e2e" / "kserve_peer" / "grpc_calls.py"
ROWS = np.round(np.random.default_rng(3).normal(size=(40, 4)), 6)
MIXED = pd.DataFrame({"size": ROWS[:, 0], "colour": np.where(ROWS[:, 1] > 0, "red", "blue").astype(object)})
INFER = f"/{protocol.SERVICE}/ModelInfer"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The service with GRPC_BIND: ``.url`` (HTTP), ``.grpc`` (host:port)."""
    root = tmp_path_factory.mktemp("grpc")
    address = f"127.0.0.1:{server.free_port()}"
    with fresh_database(root) as database_url, \
            server.running(database_url, root, ADMIN_TOKEN, env={**ADMISSION_OPEN, "GRPC_BIND": address}) as (running,):
        running.grpc = address
        yield running


def _upload_file(live, name: str, data: bytes, filename: str) -> None:
    created = requests.post(f"{live.url}/models/{name}/versions", files={"artifact": (filename, data)},
                            headers=live.headers, timeout=120)
    assert created.status_code == 201, created.text


def _promote(live, name: str, version: int, alias: str = "production") -> None:
    moved = requests.post(f"{live.url}/models/{name}/versions/{version}/promote", json={"alias": alias},
                          headers=live.headers, timeout=60)
    assert moved.status_code == 200, moved.text


@pytest.fixture(scope="module")
def kinds(live):
    """One model of each kind (and of each library), version 1 of each promoted to production: name -> whether
    it classifies."""
    y_reg = ROWS @ [1.0, -2.0, 0.5, 3.0]
    y_clf = (ROWS[:, 0] + ROWS[:, 1] * ROWS[:, 2] > 0).astype(int)
    estimators = {
        "linear": (LinearRegression().fit(ROWS, y_reg), False),
        "logistic": (LogisticRegression().fit(ROWS, y_clf), True),
        "tree": (DecisionTreeClassifier(max_depth=4, random_state=0).fit(ROWS, y_clf), True),
        "forest": (RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(ROWS, y_reg), False),
        "boosting": (HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(ROWS, y_clf), True),
    }
    for name, (estimator, _) in estimators.items():
        assert upload(live, name, estimator).status_code == 201
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                            xgboost.DMatrix(ROWS, label=y_clf), 10)
    _upload_file(live, "xgb", bytes(booster.save_raw("json")), "model.json")
    gbm = lightgbm.train({"objective": "regression", "num_leaves": 7, "verbose": -1, "num_threads": 1},
                         lightgbm.Dataset(ROWS, label=y_reg), 10)
    _upload_file(live, "lgbm", gbm.model_to_string().encode(), "model.txt")
    encode = ColumnTransformer([("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"])], remainder="passthrough")
    mixed = Pipeline([("prepare", encode), ("model", LogisticRegression())]).fit(MIXED, y_clf)
    assert upload(live, "mixed", mixed).status_code == 201
    classifies = {name: is_classifier for name, (_, is_classifier) in estimators.items()}
    classifies.update(xgb=True, lgbm=False, mixed=True)
    for name in classifies:
        _promote(live, name, 1)
    return classifies


def _rest_v2(live, name: str, ref: str, outputs: list[str]) -> dict[str, np.ndarray]:
    path = f"/v2/models/{name}/infer" if ref == "" else f"/v2/models/{name}/versions/{ref}/infer"
    answer = requests.post(f"{live.url}{path}", json={"inputs": _json_inputs(name), "outputs": [{"name": o} for o in outputs]},
                           timeout=60)
    assert answer.status_code == 200, answer.text
    return {tensor["name"]: np.array(tensor["data"]).reshape(tensor["shape"]) for tensor in answer.json()["outputs"]}


def _json_inputs(name: str) -> list[dict]:
    if name == "mixed":
        return [{"name": "size", "shape": [len(MIXED)], "datatype": "FP64", "data": MIXED["size"].tolist()},
                {"name": "colour", "shape": [len(MIXED)], "datatype": "BYTES", "data": MIXED["colour"].tolist()}]
    return [{"name": "input-0", "shape": list(ROWS.shape), "datatype": "FP64", "data": ROWS.tolist()}]


def _triton_inputs(name: str) -> list[triton.InferInput]:
    if name == "mixed":
        size = triton.InferInput("size", [len(MIXED)], "FP64")
        size.set_data_from_numpy(MIXED["size"].to_numpy())
        colour = triton.InferInput("colour", [len(MIXED)], "BYTES")
        colour.set_data_from_numpy(MIXED["colour"].to_numpy(dtype=object))
        return [size, colour]
    matrix = triton.InferInput("input-0", list(ROWS.shape), "FP64")
    matrix.set_data_from_numpy(ROWS)
    return [matrix]


def _decoded(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() for v in values.ravel()]).reshape(values.shape) if values.dtype == object else values


@pytest.mark.parametrize("ref", ["", "production", "1"])
def test_every_kind_answers_the_same_numbers_over_grpc_as_over_rest(live, kinds, ref):
    client = triton.InferenceServerClient(live.grpc)
    for name, classifies in kinds.items():
        outputs = ["predict", "predict_proba"] if classifies else ["predict"]

        answer = client.infer(name, _triton_inputs(name), model_version=ref,
                              outputs=[triton.InferRequestedOutput(o) for o in outputs])

        expected = _rest_v2(live, name, ref, outputs)
        assert answer.get_response().model_version == "1"
        for output in outputs:
            got = _decoded(answer.as_numpy(output))
            assert got.shape == expected[output].shape, (name, output)
            assert got.tolist() == expected[output].tolist(), (name, output)


def test_health_and_metadata_answer_as_over_rest(live, kinds):
    client = triton.InferenceServerClient(live.grpc)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mixed") and client.is_model_ready("linear", "production")
    assert client.is_model_ready("linear", "1")
    for name in ("logistic", "mixed"):
        metadata = client.get_model_metadata(name, as_json=True)
        rest = requests.get(f"{live.url}/v2/models/{name}", timeout=30).json()
        assert {key: metadata[key] for key in ("name", "versions", "platform")} == \
               {key: rest[key] for key in ("name", "versions", "platform")}
        assert [(t["name"], t["datatype"], [int(n) for n in t["shape"]]) for t in metadata["inputs"]] == \
               [(t["name"], t["datatype"], t["shape"]) for t in rest["inputs"]]
        assert [t["name"] for t in metadata["outputs"]] == [t["name"] for t in rest["outputs"]]
    server_metadata = client.get_server_metadata(as_json=True)
    assert server_metadata["name"] == "model-registry"
    with pytest.raises(InferenceServerException) as unknown:
        client.is_model_ready("no-such-model")
    assert unknown.value.status() == "StatusCode.NOT_FOUND"


def test_explanations_come_as_the_explanation_output(live, kinds):
    client = triton.InferenceServerClient(live.grpc)
    answer = client.infer("linear", _triton_inputs("linear")[:1], outputs=[triton.InferRequestedOutput("explanation")])
    documents = [json.loads(document) for document in answer.as_numpy("explanation")]
    rest = _rest_v2(live, "linear", "", ["explanation"])["explanation"]
    assert documents == [json.loads(document) for document in rest]
    assert len(documents) == len(ROWS)


def test_kserve_grpc_client_gets_the_same_numbers(live, kinds):
    """KServe's InferenceGRPCClient (kserve from the package index), in its own venv, as a subprocess."""
    calls = {"address": live.grpc, "calls": [
        {"model": name, "version": ref, "rows": ROWS.tolist(), "outputs": ["predict", "predict_proba"]}
        for name in ("logistic", "xgb", "boosting") for ref in ("", "1")
    ]}
    done = subprocess.run([str(KSERVE_PYTHON), str(KSERVE_PEER)], input=json.dumps(calls), capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout)
    assert answers["ready"] == {"server": True, "live": True}
    for call, answer in zip(calls["calls"], answers["answers"]):
        expected = _rest_v2(live, call["model"], call["version"], call["outputs"])
        assert answer["model_version"] == "1"
        for output in call["outputs"]:
            assert answer["outputs"][output] == expected[output].tolist(), (call, output)
    assert answers["unknown_model"]["code"] == "StatusCode.NOT_FOUND"


def _call(live, request, metadata=(), timeout=60):
    """``request`` sent to ModelInfer by a plain grpc channel: the answer, or the RpcError."""
    with grpc.insecure_channel(live.grpc, options=[("grpc.max_send_message_length", -1)]) as channel:
        infer = channel.unary_unary(INFER, request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=protocol.ModelInferResponse.FromString)
        try:
            return infer(request, metadata=metadata, timeout=timeout)
        except grpc.RpcError as error:
            return error


def _request(name="linear", datatype="FP64", shape=(2, 4), **contents):
    request = protocol.ModelInferRequest(model_name=name)
    tensor = request.inputs.add(name="input-0", datatype=datatype, shape=list(shape))
    for field, values in (contents or {"fp64_contents": ROWS[:2].ravel().tolist()}).items():
        getattr(tensor.contents, field).extend(values)
    return request


def _raw(name="linear", datatype="FP64", shape=(2, 4), data=b""):
    request = protocol.ModelInferRequest(model_name=name)
    request.inputs.add(name="input-0", datatype=datatype, shape=list(shape))
    request.raw_input_contents.append(data)
    return request


@pytest.mark.parametrize("request_, code, fragment", [
    (lambda: _request(datatype="FP99"), grpc.StatusCode.INVALID_ARGUMENT, "unknown datatype 'FP99'"),
    (lambda: _request(int64_contents=[1] * 8), grpc.StatusCode.INVALID_ARGUMENT, "send them in fp64_contents"),
    (lambda: _request(shape=(2, 3)), grpc.StatusCode.INVALID_ARGUMENT, "its shape holds 6 values but its contents have 8"),
    (lambda: _raw(data=b"\0" * 63), grpc.StatusCode.INVALID_ARGUMENT, "binary_data_size is 63"),
    (lambda: _request(datatype="BYTES", bytes_contents=[b"x"] * 8), grpc.StatusCode.INVALID_ARGUMENT,
     "feature x0: expected a number, got 'x'"),
    (lambda: _request(shape=(2, 2), fp64_contents=[1.0] * 4), grpc.StatusCode.INVALID_ARGUMENT, "send shape [N, 4]"),
    (lambda: protocol.ModelInferRequest(model_name="linear"), grpc.StatusCode.INVALID_ARGUMENT, "at least one tensor"),
    (lambda: _request(name="no-such-model"), grpc.StatusCode.NOT_FOUND, "no-such-model"),
    (lambda: _raw(data=b"\0" * (100 * 2**20)), grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
])
def test_malformed_calls_get_the_status_that_says_what_is_wrong(live, kinds, request_, code, fragment):
    answer = _call(live, request_())

    assert isinstance(answer, grpc.RpcError)
    assert answer.code() == code, answer.details()
    assert fragment in answer.details()
    if "problems in all" in answer.details():  # each of them, as REST's problem lists them
        assert "row 1, feature x0" in json.loads(dict(answer.trailing_metadata())["errors"])


def test_unknown_output_and_version_say_what_there_is(live, kinds):
    request = _request()
    request.outputs.add(name="predict_proba")
    answer = _call(live, request)
    assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT and "answers predict and explanation" in answer.details()
    request = _request()
    request.model_version = "99"
    assert _call(live, request).code() == grpc.StatusCode.NOT_FOUND


def test_calls_are_counted_and_answer_with_the_version_and_request_id(live, kinds):
    def counted() -> float:
        text = requests.get(f"{live.url}/metrics", timeout=30).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith('registry_predictions_total{') and 'model="forest"' in line and 'status="200"' in line)

    before = counted()
    with grpc.insecure_channel(live.grpc) as channel:
        infer = channel.unary_unary(INFER, request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=protocol.ModelInferResponse.FromString)
        for _ in range(5):
            _, call = infer.with_call(_request(name="forest"), metadata=[("x-request-id", "grpc-call-1")], timeout=60)
            sent = dict(call.initial_metadata())
            assert sent["x-model-version"] == "1" and sent["x-request-id"] == "grpc-call-1"
    deadline = time.monotonic() + 10  # each worker shares its counts about once a second
    while counted() < before + 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counted() == before + 5


def test_an_alias_follows_a_hot_swap_and_grpc_callers_see_no_failed_call(live):
    """Four gRPC callers ask ``swap/production`` while it is promoted and rolled back; every call is answered by
    a version the alias pointed at meanwhile, with that version's number (PROBE_ROW times its factor)."""
    factors = {1: 1.0, 2: 2.0, 3: 3.0}
    for number in factors:
        assert upload(live, "swap", scaled_sum(factors[number])).status_code == 201
    _promote(live, "swap", 1)
    client = triton.InferenceServerClient(live.grpc)
    probe = triton.InferInput("input-0", [1, 3], "FP64")
    probe.set_data_from_numpy(np.array([PROBE_ROW]))
    stop, answers, failures = threading.Event(), [], []

    def caller():
        own = triton.InferenceServerClient(live.grpc)
        while not stop.is_set():
            started = time.monotonic()
            try:
                result = own.infer("swap", [probe], model_version="production")
            except InferenceServerException as error:
                failures.append(str(error))
                continue
            version = int(result.get_response().model_version)
            answers.append((started, time.monotonic(), version, float(result.as_numpy("predict")[0])))

    assert client.infer("swap", [probe]).as_numpy("predict")[0] == pytest.approx(expected_prediction(1.0))
    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        moves = run_moves(live, "swap", [("promote", 2), ("promote", 3), ("rollback", None), ("promote", 3)], pause=1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    assert len(answers) > 40
    window = live.refresh_seconds * 3
    for started, finished, version, prediction in answers:
        assert prediction == pytest.approx(expected_prediction(factors[version]))
        answer = type("A", (), {"started": started, "finished": finished})
        assert version in allowed_versions(answer, 1, moves, window)
    assert {version for *_, version, _ in answers[-20:]} == {3}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A service where reads need a token, with GRPC_BIND; models ``a`` and ``b``, and a token scoped to ``a``."""
    root = tmp_path_factory.mktemp("grpc-guarded")
    address = f"127.0.0.1:{server.free_port()}"
    env = {**ADMISSION_OPEN, "GRPC_BIND": address, "REQUIRE_AUTH_FOR_READS": "true"}
    with fresh_database(root) as database_url, server.running(database_url, root, ADMIN_TOKEN, workers=2, env=env) as (running,):
        running.grpc = address
        for name in ("a", "b"):
            assert upload(running, name, scaled_sum(1.0, n_features=4)).status_code == 201
            _promote(running, name, 1)
        created = requests.post(f"{running.url}/tokens", headers=running.headers, timeout=30, json={
            "name": "only-a", "role": "reader", "scopes": [{"models": ["a"], "rights": ["read", "predict"]}]})
        assert created.status_code == 201, created.text
        running.scoped = created.json()["token"]
        yield running


@pytest.mark.parametrize("model, token, code", [
    ("a", None, grpc.StatusCode.UNAUTHENTICATED),
    ("a", "not-a-token", grpc.StatusCode.UNAUTHENTICATED),
    ("b", "scoped", grpc.StatusCode.PERMISSION_DENIED),
    ("a", "scoped", grpc.StatusCode.OK),
    ("b", "admin", grpc.StatusCode.OK),
])
def test_where_reads_need_a_token_the_metadata_carries_it_scoped_per_model(guarded, model, token, code):
    secret = {"scoped": guarded.scoped, "admin": ADMIN_TOKEN}.get(token, token)
    metadata = [("authorization", f"Bearer {secret}")] if secret else []

    answer = _call(guarded, _request(name=model), metadata=metadata)

    if code == grpc.StatusCode.OK:
        assert isinstance(answer, protocol.ModelInferResponse)
        assert answer.model_version == "1"
    else:
        assert answer.code() == code
        assert "token" in answer.details()
    client = triton.InferenceServerClient(guarded.grpc)
    if code == grpc.StatusCode.OK:
        assert client.is_model_ready(model, headers=dict(metadata))
    else:
        with pytest.raises(InferenceServerException) as refused:
            client.is_model_ready(model, headers=dict(metadata))
        assert refused.value.status() == str(code)


def test_a_canary_splits_grpc_calls_by_the_sticky_key_in_the_metadata_as_rest_splits_by_the_header(live):
    for factor in (1.0, 2.0):
        assert upload(live, "canary", scaled_sum(factor)).status_code == 201
    _promote(live, "canary", 1)
    change(live, "canary", "start", {"canary": {"version": 2, "percent": 50}, "sticky_header": "X-User-Id"})
    client = triton.InferenceServerClient(live.grpc)
    probe = triton.InferInput("input-0", [1, 3], "FP64")
    probe.set_data_from_numpy(np.array([PROBE_ROW]))

    def over_grpc(user: str) -> int:
        return int(client.infer("canary", [probe], headers={"x-user-id": user}).get_response().model_version)

    def over_rest(user: str) -> int:
        answer = requests.post(f"{live.url}/v2/models/canary/infer", headers={"X-User-Id": user}, timeout=30, json={
            "inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": PROBE_ROW}]})
        return int(answer.json()["model_version"])

    wait_for(lambda: len({over_grpc(f"user-{n}") for n in range(20)}) == 2, "the canary to answer over gRPC")
    time.sleep(live.refresh_seconds * 3)  # past the propagation bound (ALIAS_REFRESH_SECONDS): every worker routes it
    for n in range(20):
        user = f"user-{n}"
        versions = {over_grpc(user) for _ in range(3)} | {over_rest(user)}
        assert len(versions) == 1, (user, versions)  # each key sticks to one arm, on both transports


def test_a_shadow_is_mirrored_from_grpc_calls_whose_callers_only_get_the_primarys_answers(live):
    for factor in (1.0, 3.0):
        assert upload(live, "mirrored", scaled_sum(factor)).status_code == 201
    _promote(live, "mirrored", 1)
    change(live, "mirrored", "start", {"shadow": {"version": 2, "percent": 100}})
    time.sleep(live.refresh_seconds + CLOCK_SLACK_SECONDS)  # the propagation bound: every worker routes the shadow
    client = triton.InferenceServerClient(live.grpc)
    probe = triton.InferInput("input-0", [1, 3], "FP64")
    probe.set_data_from_numpy(np.array([PROBE_ROW]))
    calls = 60

    answers = [client.infer("mirrored", [probe]) for _ in range(calls)]

    assert {answer.get_response().model_version for answer in answers} == {"1"}
    assert all(answer.as_numpy("predict")[0] == pytest.approx(expected_prediction(1.0)) for answer in answers)
    figures = figures_once(live, "mirrored", lambda f: f["primary"]["requests"] == calls and
                           f["shadow"]["compared"] + f["shadow"]["dropped"] + f["shadow"]["errors"] == calls)
    assert figures["primary"]["requests"] == calls and figures["primary"]["errors"] == 0
    shadow = figures["shadow"]
    assert shadow["errors"] == 0 and shadow["compared"] + shadow["dropped"] == calls and shadow["compared"] > 0
    # v2 answers three times what v1 answers: the mirrored calls were compared with what the callers got
    difference = 2 * expected_prediction(1.0)
    assert shadow["mean_abs_diff"] == pytest.approx(difference) and shadow["max_abs_diff"] == pytest.approx(difference)


def test_the_vendored_descriptor_is_kserves_and_triton_defines_the_same_fields():
    """api/grpc/grpc_predict_v2.txtpb is the descriptor the kserve package ships (make grpc-descriptor writes it
    again), and every field of its messages is the same field (number, type) in Triton's grpc_service.proto, which
    tritonclient speaks."""
    from google.protobuf import descriptor_pb2, text_format
    from tritonclient.grpc import service_pb2

    committed = text_format.Parse((BASE_DIR / "api" / "grpc" / protocol.DESCRIPTOR_FILE).read_text(),
                                  descriptor_pb2.FileDescriptorProto())
    dumped = subprocess.run([str(KSERVE_PYTHON), "-c", (
        "from google.protobuf import descriptor_pb2, text_format\n"
        "from kserve.protocol.grpc import grpc_predict_v2_pb2 as m\n"
        "d = descriptor_pb2.FileDescriptorProto(); m.DESCRIPTOR.CopyToProto(d); print(text_format.MessageToString(d))")],
        capture_output=True, text=True, timeout=120, check=True).stdout
    assert text_format.Parse(dumped, descriptor_pb2.FileDescriptorProto()) == committed

    def fields(message) -> dict:
        found = {field.name: (field.number, field.type) for field in message.fields}
        for nested in message.nested_types:
            found.update({f"{nested.name}.{name}": kind for name, kind in fields(nested).items()})
        return found

    for message in committed.message_type:
        if message.name.startswith("Repository"):
            continue  # the model repository extension: not served here
        ours = fields(protocol.ModelInferRequest.DESCRIPTOR.file.message_types_by_name[message.name])
        triton_fields = fields(service_pb2.DESCRIPTOR.message_types_by_name[message.name])
        assert {name: triton_fields.get(name) for name in ours} == ours, message.name
