"""The Open Inference Protocol against a real gunicorn, driven by clients written by others.

tritonclient (NVIDIA's HTTP client, JSON and binary tensor data) and MLServer's own request and
response types and codecs (pydantic models that validate every shape we answer) each check that
predictions equal the local scikit-learn model's, for versions given as numbers and as aliases.
"""
import json
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import requests
import tritonclient.http as triton

from tests.e2e.peer_packages import mlserver_without_its_server

mlserver_without_its_server()
from mlserver.codecs import NumpyCodec, NumpyRequestCodec, PandasCodec  # noqa: E402
from mlserver.types import (  # noqa: E402
    InferenceErrorResponse,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    RequestOutput,
)
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from tritonclient.utils import InferenceServerException

from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.traffic import Answer, allowed_versions, move, run_moves
from config import BASE_DIR
from tests.databases import BACKEND
from tests.helpers import classification_data, regression_data

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("other makers' clients reading our answers are what it tests; tests/integration/test_v2_api.py "
            "runs the protocol on both backends: the SQLite pass runs it"),
)

ROWS = np.random.default_rng(3).normal(size=(50, 4))


def _mixed_frame(n_rows=40, seed=1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "size": rng.normal(size=n_rows),
        "colour": pd.Series(rng.choice(["red", "green", "blue"], size=n_rows), dtype=object),
    })


def _promote(live, name, version, alias="production"):
    response = requests.post(f"{live.url}/models/{name}/versions/{version}/promote", json={"alias": alias}, headers=live.headers, timeout=60)
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def models(live_registry):
    """``reg`` v1 (production) and v2 (staging), ``clf`` and ``mixed`` (a text column), as uploaded."""
    X, y = regression_data(n_features=4)
    fitted = {"reg": [LinearRegression().fit(X, y), LinearRegression().fit(X, -3 * y)]}
    X, y = classification_data(n_features=4)
    fitted["clf"] = [LogisticRegression().fit(X, y)]
    frame = _mixed_frame()
    encode = ColumnTransformer([("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"])], remainder="passthrough")
    fitted["mixed"] = [Pipeline([("prepare", encode), ("model", LogisticRegression())]).fit(frame, np.where(frame["size"] > 0, "big", "small"))]
    for name, versions in fitted.items():
        for model in versions:
            assert upload(live_registry, name, model).status_code == 201
        _promote(live_registry, name, 1)
    _promote(live_registry, "reg", 2, "staging")
    return fitted


@pytest.fixture(scope="module")
def triton_client(live_registry):
    client = triton.InferenceServerClient(live_registry.url.removeprefix("http://"), connection_timeout=30, network_timeout=60)
    yield client
    client.close()


# -- tritonclient ------------------------------------------------------------------------------


def test_tritonclient_sees_a_live_ready_server_with_the_binary_extension(triton_client):
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert "binary_tensor_data" in triton_client.get_server_metadata()["extensions"]


def test_tritonclient_reads_model_metadata_and_readiness(triton_client, models):
    metadata = triton_client.get_model_metadata("reg")
    assert metadata["versions"] == ["1", "2"]
    assert metadata["inputs"][0]["shape"] == [-1, 4]
    assert metadata["inputs"][0]["parameters"]["feature_names"] == ["x0", "x1", "x2", "x3"]
    assert triton_client.get_model_metadata("reg", model_version="staging")["parameters"]["version"] == "2"
    assert triton_client.is_model_ready("reg") and triton_client.is_model_ready("reg", "2")
    assert triton_client.is_model_ready("reg", "staging")
    assert not triton_client.is_model_ready("nope") and not triton_client.is_model_ready("reg", "9")


def _matrix(rows: np.ndarray, binary: bool, datatype="FP64") -> triton.InferInput:
    tensor = triton.InferInput("input-0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("version, index", [("", 0), ("1", 0), ("2", 1), ("staging", 1), ("production", 0)])
def test_tritonclient_predictions_equal_the_local_models_for_numbers_and_aliases(triton_client, models, binary, version, index):
    outputs = [triton.InferRequestedOutput("predict", binary_data=binary)]
    result = triton_client.infer("reg", [_matrix(ROWS, binary)], model_version=version, outputs=outputs, request_id="r1")
    np.testing.assert_array_equal(result.as_numpy("predict"), models["reg"][index].predict(ROWS))
    assert result.get_response()["model_version"] == str(index + 1)
    assert result.get_response()["id"] == "r1"


def test_tritonclient_defaults_binary_float32_and_probabilities(triton_client, models):
    rows = ROWS.astype(np.float32)
    result = triton_client.infer("clf", [_matrix(rows, True, "FP32")], outputs=[
        triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba"),
    ])
    np.testing.assert_array_equal(result.as_numpy("predict"), models["clf"][0].predict(rows.astype(np.float64)))
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), models["clf"][0].predict_proba(rows.astype(np.float64)))
    assert result.get_output("predict_proba")["parameters"]["classes"] == [0, 1]
    # Without outputs, tritonclient asks for every output in binary: the default, predict, comes back.
    default = triton_client.infer("clf", [_matrix(ROWS, True)])
    np.testing.assert_array_equal(default.as_numpy("predict"), models["clf"][0].predict(ROWS))


def test_tritonclient_sends_text_columns_as_bytes_one_tensor_per_feature(triton_client, models):
    frame = _mixed_frame(12, seed=5)
    size = triton.InferInput("size", [12, 1], "FP64")
    size.set_data_from_numpy(frame[["size"]].to_numpy())
    colour = triton.InferInput("colour", [12, 1], "BYTES")
    colour.set_data_from_numpy(frame[["colour"]].to_numpy(dtype=object))
    result = triton_client.infer("mixed", [size, colour])
    assert [label.decode() for label in result.as_numpy("predict")] == models["mixed"][0].predict(frame).tolist()


def _column(name, values, datatype="FP64", binary=True):
    tensor = triton.InferInput(name, [len(values)], datatype)
    tensor.set_data_from_numpy(np.asarray(values, dtype=object if datatype == "BYTES" else None), binary_data=binary)
    return tensor


def _bad_shape():
    tensor = _matrix(ROWS[:2], binary=False)
    return [tensor.set_shape([3, 4])]


TRITON_BAD_INPUTS = {
    "shape-does-not-match-data": (_bad_shape, [], "400", "its shape holds 12 values but its data has 8"),
    "named-after-no-feature": (lambda: [_column(f"x{k}", ROWS[:2, k]) for k in range(3)] + [_column("colour", ROWS[:2, 3])], [], "400", "colour are named after no feature"),
    "missing-feature": (lambda: [_column(f"x{k}", ROWS[:2, k]) for k in range(3)], [], "400", "missing feature(s) x3"),
    "strings-for-numbers": (lambda: [_column(f"x{k}", ["1.5", "2"], "BYTES") for k in range(4)], [], "400", "row 0, feature x0: expected a number, got '1.5'"),
    "nan": (lambda: [_matrix(np.array([[1.0, np.nan, 2.0, 3.0]]), True)], [], "400", "row 0, feature x1: expected a finite number, got NaN"),
    "infinity-in-json": (lambda: [_matrix(np.array([[1.0, 2.0, np.inf, 3.0]]), False)], [], "400", "feature x2: expected a finite number"),
    "unknown-output": (lambda: [_matrix(ROWS, True)], ["labels"], "400", "unknown output(s) labels"),
    "batch-over-the-limit": (lambda: [_matrix(np.ones((10_001, 4)), True)], [], "413", "batch has 10001 rows; the limit is 10000"),
}


@pytest.mark.parametrize("make_inputs, outputs, status, fragment", list(TRITON_BAD_INPUTS.values()), ids=list(TRITON_BAD_INPUTS))
def test_tritonclient_gets_the_protocols_error_for_bad_inputs(triton_client, models, make_inputs, outputs, status, fragment):
    with pytest.raises(InferenceServerException) as raised:
        triton_client.infer("reg", make_inputs(), outputs=[triton.InferRequestedOutput(name) for name in outputs] or None)
    assert raised.value.status() == status
    assert fragment in raised.value.message()


def test_tritonclient_gets_404_for_an_unknown_model(triton_client, models):
    with pytest.raises(InferenceServerException) as raised:
        triton_client.infer("nope", [_matrix(ROWS, True)])
    assert raised.value.status() == "404" and "model 'nope' does not exist" in raised.value.message()


# -- raw HTTP for what no client sends on purpose ------------------------------------------------


def _raw_binary(live, header_delta=0, size_delta=0, datatype="FP64"):
    values = np.ones((1, 4))
    header = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": datatype,
                                     "parameters": {"binary_data_size": values.nbytes + size_delta}}]}).encode()
    return requests.post(f"{live.url}/v2/models/reg/infer", data=header + values.tobytes(),
                         headers={"Inference-Header-Content-Length": str(len(header) + header_delta)}, timeout=60)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"header_delta": 100}, "Inference-Header-Content-Length is"),
        ({"header_delta": -3}, "not valid"),
        ({"size_delta": -8}, "binary_data_size is 24"),
        ({"datatype": "FP128"}, "unknown datatype 'FP128'"),
    ],
    ids=["header-past-the-body", "header-cuts-the-json", "sizes-short-of-the-body", "unknown-datatype"],
)
def test_binary_headers_and_datatypes_that_do_not_match_are_400(live_registry, models, kwargs, fragment):
    response = _raw_binary(live_registry, **kwargs)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_a_body_over_the_size_limit_is_413(live_registry, models):
    body = b'{"inputs": []}' + b" " * (32 * 1024 * 1024 + 1)
    response = requests.post(f"{live_registry.url}/v2/models/reg/infer", data=body, timeout=60)
    assert response.status_code == 413
    assert "MAX_PREDICT_MB" in response.json()["error"]


# -- MLServer's types and codecs -----------------------------------------------------------------


def _mlserver_infer(live, path: str, request: InferenceRequest) -> InferenceResponse:
    response = requests.post(f"{live.url}/v2/models/{path}/infer", data=request.model_dump_json(exclude_none=True), timeout=60)
    assert response.status_code == 200, response.text
    return InferenceResponse.model_validate_json(response.content)


def test_mlserver_types_validate_server_and_model_metadata(live_registry, models):
    server = MetadataServerResponse.model_validate_json(requests.get(f"{live_registry.url}/v2", timeout=10).content)
    assert "binary_tensor_data" in server.extensions
    metadata = MetadataModelResponse.model_validate_json(requests.get(f"{live_registry.url}/v2/models/mixed", timeout=10).content)
    assert [(t.name, t.datatype, t.shape) for t in metadata.inputs] == [("size", "FP64", [-1, 1]), ("colour", "BYTES", [-1, 1])]
    assert [t.name for t in metadata.outputs] == ["predict", "predict_proba", "explanation"]


@pytest.mark.parametrize("path, index", [("reg", 0), ("reg/versions/1", 0), ("reg/versions/2", 1), ("reg/versions/staging", 1)])
def test_mlserver_numpy_codec_predictions_equal_the_local_models(live_registry, models, path, index):
    answer = _mlserver_infer(live_registry, path, NumpyRequestCodec.encode_request(ROWS))
    assert answer.model_name == "reg" and answer.model_version == str(index + 1)
    np.testing.assert_array_equal(NumpyCodec.decode_output(answer.outputs[0]), models["reg"][index].predict(ROWS))


def test_mlserver_pandas_codec_sends_a_mixed_frame_and_gets_labels_and_probabilities(live_registry, models):
    frame = _mixed_frame(15, seed=9)
    request = PandasCodec.encode_request(frame)
    request.outputs = [RequestOutput(name="predict"), RequestOutput(name="predict_proba")]
    request.id = "pandas-1"
    answer = _mlserver_infer(live_registry, "mixed", request)
    assert answer.id == "pandas-1"
    by_name = {output.name: output for output in answer.outputs}
    assert by_name["predict"].data.root == models["mixed"][0].predict(frame).tolist()
    np.testing.assert_array_equal(NumpyCodec.decode_output(by_name["predict_proba"]), models["mixed"][0].predict_proba(frame))


def test_mlserver_pandas_codec_of_a_numeric_frame_is_one_tensor_per_feature(live_registry, models):
    frame = pd.DataFrame(ROWS[:7], columns=["x0", "x1", "x2", "x3"])
    answer = _mlserver_infer(live_registry, "clf", PandasCodec.encode_request(frame))
    np.testing.assert_array_equal(NumpyCodec.decode_output(answer.outputs[0]), models["clf"][0].predict(ROWS[:7]))


def _frame(columns, rows=ROWS[:2]):
    return pd.DataFrame(rows[:, : len(columns)], columns=columns)


def _with_output(request: InferenceRequest, name: str) -> InferenceRequest:
    request.outputs = [RequestOutput(name=name)]
    return request


def _with_shape(request: InferenceRequest, shape: list[int]) -> InferenceRequest:
    request.inputs[0].shape = shape
    return request


MLSERVER_BAD_INPUTS = {
    "missing-feature": (lambda: PandasCodec.encode_request(_frame(["x0", "x1", "x2"])), "missing feature(s) x3"),
    "named-after-no-feature": (lambda: PandasCodec.encode_request(_frame(["x0", "x1", "x2", "colour"])), "colour are named after no feature"),
    "strings-for-numbers": (lambda: PandasCodec.encode_request(pd.DataFrame({f"x{k}": pd.Series(["1.5", "2"], dtype=object) for k in range(4)})), "row 0, feature x0: expected a number, got '1.5'"),
    "shape-does-not-match-data": (lambda: _with_shape(NumpyRequestCodec.encode_request(ROWS[:2]), [3, 4]), "its shape holds 12 values but its data has 8"),
    "unknown-output": (lambda: _with_output(NumpyRequestCodec.encode_request(ROWS[:2]), "predict_log_proba"), "unknown output(s) predict_log_proba"),
    "nan": (lambda: NumpyRequestCodec.encode_request(np.array([[1.0, np.nan, 2.0, 3.0]])), "holds null"),
}


@pytest.mark.parametrize("make_request, fragment", list(MLSERVER_BAD_INPUTS.values()), ids=list(MLSERVER_BAD_INPUTS))
def test_mlservers_error_type_reads_our_answers_to_bad_inputs(live_registry, models, make_request, fragment):
    body = make_request().model_dump_json(exclude_none=True)
    response = requests.post(f"{live_registry.url}/v2/models/reg/infer", data=body, timeout=60)
    assert response.status_code == 400
    assert fragment in InferenceErrorResponse.model_validate_json(response.content).error


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_compressed_requests_are_answered(triton_client, models, algorithm):
    result = triton_client.infer("reg", [_matrix(ROWS, True)], request_compression_algorithm=algorithm)
    np.testing.assert_array_equal(result.as_numpy("predict"), models["reg"][0].predict(ROWS))


# -- the examples of docs/open-inference-protocol.md, run as written -----------------------------

DOC = BASE_DIR / "docs" / "open-inference-protocol.md"
DOC_ADDRESS = "127.0.0.1:8000"
QUICKSTART_ROW = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]  # the first row of examples/diabetes.csv


def _doc_block(language: str, holding: str) -> str:
    """The doc's first fenced block of ``language`` that holds ``holding``: its tritonclient or its curl
    example (tests/e2e/test_docs.py runs the whole doc; these check the answers it shows)."""
    return next(block for block in re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S) if holding in block)


@pytest.fixture(scope="module")
def quickstart(live_registry):
    """The doc's model, ``v2-forest``, with the README's ten features, in production, as the doc makes it."""
    X, y = regression_data(n_features=10)
    model = LinearRegression().fit(X, y)
    assert upload(live_registry, "v2-forest", model).status_code == 201
    _promote(live_registry, "v2-forest", 1)
    return model


def test_the_docs_tritonclient_example_runs_as_written(live_registry, quickstart):
    code = _doc_block("python", "tritonclient").replace(DOC_ADDRESS, live_registry.url.removeprefix("http://"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    names, answer = done.stdout.strip().splitlines()
    assert names == str([f"x{k}" for k in range(10)])
    version, prediction = answer.split(" ", 1)
    assert version == "1"
    assert float(prediction.strip("[]")) == pytest.approx(quickstart.predict([QUICKSTART_ROW])[0])


def test_the_docs_curl_example_runs_as_written(live_registry, quickstart):
    command = _doc_block("sh", "/infer").replace(f"http://{DOC_ADDRESS}", live_registry.url)
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=True)
    answer = json.loads(done.stdout)
    assert answer["model_version"] == "1" and answer["id"] == "q-1"
    assert answer["outputs"][0]["data"] == pytest.approx(quickstart.predict([QUICKSTART_ROW]).tolist())


# -- hot swap: promotes and rollbacks under V2 load ------------------------------------------------


class V2Load(threading.Thread):
    """One client thread that sends the probe row to a V2 infer URL until stopped."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.answers, self.stopped = url, [], threading.Event()

    def run(self) -> None:
        session = requests.Session()
        body = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": PROBE_ROW}]}
        while not self.stopped.is_set():
            started = time.monotonic()
            try:
                response = session.post(self.url, json=body, timeout=30)
            except requests.RequestException:
                self.answers.append(Answer(self.url, started, time.monotonic(), 0, None, None, None))
                continue
            answer = response.json() if response.status_code == 200 else {}
            version = int(answer["model_version"]) if answer else None
            prediction = answer["outputs"][0]["data"][0] if answer else None
            self.answers.append(Answer(self.url, started, time.monotonic(), response.status_code, version,
                                       response.headers.get("X-Model-Version"), prediction))


def test_promotes_and_rollbacks_under_v2_load_fail_no_request_and_each_answer_names_its_version(live_registry):
    name, window = "swap-v2", live_registry.refresh_seconds
    for factor in (1, 2, 3):
        assert upload(live_registry, name, scaled_sum(factor)).status_code == 201
    move(live_registry, "promote", name, 1)
    loads = [V2Load(f"{live_registry.url}/v2/models/{name}/infer") for _ in range(3)]
    for load in loads:
        load.start()
    try:
        moves = run_moves(live_registry, name, [("promote", 2), ("promote", 3), ("rollback", None), ("promote", 2)], pause=window * 1.5)
    finally:
        for load in loads:
            load.stopped.set()
            load.join()
    answers = [answer for load in loads for answer in load.answers]

    assert len(answers) > 100
    assert [a for a in answers if a.status != 200] == []
    for answer in answers:
        assert answer.header_version == str(answer.version)
        assert answer.prediction == pytest.approx(expected_prediction(answer.version))
    assert [a for a in answers if a.version not in allowed_versions(a, 1, moves, window)] == []
