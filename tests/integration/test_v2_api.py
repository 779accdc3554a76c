"""The Open Inference Protocol (V2 REST) edge through the Flask test client: routes, layouts, datatypes.

The binary bodies are made and read by tritonclient's own request and response codecs.
"""
import gzip
import json
import zlib

import numpy as np
import pytest
import tritonclient.http as triton
from sklearn.linear_model import LinearRegression

from tests.helpers import regression_data, upload_ok
from tests.integration.test_metrics import scrape, value
from tests.integration.v2_support import (  # noqa: F401 (fixtures)
    ADMIN,
    FEATURES,
    INTEGER_ROWS,
    ROWS,
    assert_error,
    by_feature,
    client,
    infer,
    mixed_frame,
    models,
    output,
    promote,
    tensor,
)

# -- server ------------------------------------------------------------------------------------


def test_server_metadata_names_the_binary_extension(client):
    body = client.get("/v2").get_json()
    assert body["name"] and body["version"]
    assert "binary_tensor_data" in body["extensions"]


def test_live_and_ready_answer_true(client):
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}


def test_ready_is_503_while_readyz_is(build_app, tmp_path):
    client = build_app(url="postgresql+psycopg://postgres@127.0.0.1:1/registry?connect_timeout=2").test_client()
    assert client.get("/readyz").status_code == 503
    assert_error(client.get("/v2/health/ready"), 503, "database")
    assert client.get("/v2/health/live").status_code == 200


def test_ready_while_degraded_as_readyz_is(build_app, tmp_path):
    regular_file = tmp_path / "not-a-directory"
    regular_file.write_text("x")
    client = build_app(artifact_root=regular_file / "artifacts").test_client()
    assert client.get("/readyz").get_json()["status"] == "degraded"
    assert client.get("/v2/health/ready").get_json() == {"ready": True}


# -- model metadata and readiness --------------------------------------------------------------


def test_metadata_of_a_numeric_model_is_one_matrix_input_with_the_feature_names(client, models):
    body = client.get("/v2/models/reg").get_json()
    assert body["name"] == "reg" and body["platform"] == "sklearn"
    assert body["versions"] == ["1", "2"]
    assert body["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4], "parameters": {"feature_names": FEATURES}}]
    assert body["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]},
                               {"name": "explanation", "datatype": "BYTES", "shape": [-1]}]
    assert body["parameters"]["feature_names"] == FEATURES
    assert body["parameters"]["version"] == "1"


@pytest.mark.parametrize("ref", ["2", "staging"])
def test_metadata_of_a_version_by_number_or_alias_names_that_version(client, models, ref):
    assert client.get(f"/v2/models/reg/versions/{ref}").get_json()["parameters"]["version"] == "2"


def test_metadata_of_a_classifier_offers_probabilities_and_of_a_mixed_model_one_tensor_per_feature(client, models):
    clf = client.get("/v2/models/clf").get_json()
    assert clf["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2], "parameters": {"classes": [0, 1]}},
        {"name": "explanation", "datatype": "BYTES", "shape": [-1]},
    ]
    mixed = client.get("/v2/models/mixed").get_json()
    assert mixed["inputs"] == [
        {"name": "size", "datatype": "FP64", "shape": [-1, 1]},
        {"name": "colour", "datatype": "BYTES", "shape": [-1, 1]},
    ]
    assert mixed["outputs"][0]["datatype"] == "BYTES"


@pytest.mark.parametrize("path", ["/v2/models/reg/ready", "/v2/models/reg/versions/2/ready", "/v2/models/reg/versions/staging/ready"])
def test_a_known_model_or_version_is_ready(client, models, path):
    assert client.get(path).get_json() == {"name": "reg", "ready": True}


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("/v2/models/nope/ready", "model 'nope' does not exist"),
        ("/v2/models/reg/versions/9/ready", "no version 9"),
        ("/v2/models/reg/versions/canary/ready", "no alias 'canary'"),
        ("/v2/models/nope", "model 'nope' does not exist"),
        ("/v2/models/reg/versions/9", "no version 9"),
        ("/v2/models/nope/infer", "model 'nope' does not exist"),
    ],
)
def test_unknown_models_versions_and_aliases_are_404(client, models, path, fragment):
    response = client.post(path, json={"inputs": [tensor("x", ROWS)]}) if path.endswith("infer") else client.get(path)
    assert_error(response, 404, fragment)


def test_a_model_without_a_production_alias_is_404_until_one_is_set(client):
    X, y = regression_data(n_features=4)
    upload_ok(client, ADMIN, "fresh", LinearRegression().fit(X, y))
    assert_error(client.get("/v2/models/fresh/ready"), 404, "no alias 'production'")
    assert client.get("/v2/models/fresh/versions/1/ready").status_code == 200


# -- inference: layouts and datatypes ----------------------------------------------------------


LAYOUTS = {
    "matrix-nested": lambda rows: [tensor("input-0", rows)],
    "matrix-flat": lambda rows: [tensor("anything", np.ravel(rows), shape=[len(rows), 4])],
    "features-[N]": lambda rows: by_feature(rows),
    "features-[N,1]": lambda rows: by_feature(rows, column_shape=lambda n: [n, 1]),
    "features-shuffled": lambda rows: by_feature(rows)[::-1],
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_gives_the_estimators_own_predictions(client, models, layout):
    got = output(infer(client, "reg", LAYOUTS[layout](ROWS)))
    assert got["datatype"] == "FP64" and got["shape"] == [3]
    assert got["data"] == models["reg"][0].predict(np.array(ROWS)).tolist()


@pytest.mark.parametrize("datatype", ["INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"])
def test_every_signed_numeric_datatype_is_taken(client, models, datatype):
    got = output(infer(client, "reg", [tensor("input-0", INTEGER_ROWS, datatype)]))
    assert got["data"] == pytest.approx(models["reg"][0].predict(np.array(INTEGER_ROWS, dtype=float)).tolist())


@pytest.mark.parametrize("datatype", ["UINT8", "UINT16", "UINT32", "UINT64", "BOOL"])
def test_unsigned_and_boolean_datatypes_are_taken_as_numbers(client, models, datatype):
    rows = [[1, 0, 1, 1], [0, 1, 0, 1]]
    data = [[bool(v) for v in row] for row in rows] if datatype == "BOOL" else rows
    got = output(infer(client, "reg", [{"name": "input-0", "shape": [2, 4], "datatype": datatype, "data": data}]))
    assert got["data"] == pytest.approx(models["reg"][0].predict(np.array(rows, dtype=float)).tolist())


def test_a_mixed_model_takes_bytes_for_its_text_column_as_mlservers_pandas_codec_sends_it(client, models):
    frame = mixed_frame().head(5)
    inputs = [
        {"name": "size", "shape": [5, 1], "datatype": "FP64", "data": frame["size"].tolist()},
        {"name": "colour", "shape": [5, 1], "datatype": "BYTES", "data": frame["colour"].tolist()},
    ]
    got = output(infer(client, "mixed", inputs, parameters={"content_type": "pd"}))
    assert got["datatype"] == "BYTES"
    assert got["data"] == models["mixed"].predict(frame).tolist()


def test_probabilities_come_with_the_classes_when_asked_and_the_id_is_echoed(client, models):
    response = infer(client, "clf", [tensor("input-0", ROWS)], id="req-7", outputs=[{"name": "predict"}, {"name": "predict_proba"}])
    body = response.get_json()
    assert body["id"] == "req-7" and body["model_name"] == "clf" and body["model_version"] == "1"
    proba = output(response, "predict_proba")
    assert proba["shape"] == [3, 2] and proba["parameters"] == {"classes": [0, 1]}
    assert np.reshape(proba["data"], (3, 2)).tolist() == models["clf"].predict_proba(np.array(ROWS)).tolist()
    assert output(response)["data"] == models["clf"].predict(np.array(ROWS)).tolist()


def test_only_predict_is_answered_by_default_and_without_an_id_none_is_made_up(client, models):
    body = infer(client, "clf", [tensor("input-0", ROWS)]).get_json()
    assert [o["name"] for o in body["outputs"]] == ["predict"]
    assert "id" not in body


def test_nulls_where_the_protocol_has_optional_fields_are_taken_as_absent_as_the_openapi_document_says(client, models):
    # pydantic-built clients (KServe's) send their unset fields as null; the document allows it where the server
    # takes it (a test of the schema fuzzer sent "parameters": null and got 200 against a schema saying object)
    given = {"id": None, "parameters": None, "outputs": None,
             "inputs": [{**tensor("input-0", ROWS), "parameters": None}]}
    body = client.post("/v2/models/clf/infer", json=given).get_json()
    assert [o["name"] for o in body["outputs"]] == ["predict"] and "id" not in body
    asked = client.post("/v2/models/clf/infer", json={**given, "outputs": [{"name": "predict_proba", "parameters": None}]})
    assert [o["name"] for o in asked.get_json()["outputs"]] == ["predict_proba"]
    schema = client.get("/openapi.json").get_json()["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]
    properties = schema["content"]["application/json"]["schema"]["properties"]
    assert "null" in properties["id"]["type"] and "null" in properties["parameters"]["type"]
    assert "null" in properties["outputs"]["type"] and "null" in properties["inputs"]["items"]["properties"]["parameters"]["type"]
    assert "null" in properties["outputs"]["items"]["properties"]["parameters"]["type"]


@pytest.mark.parametrize(
    "path, version",
    [("reg", "1"), ("reg/versions/1", "1"), ("reg/versions/2", "2"), ("reg/versions/staging", "2"), ("reg/versions/latest", "2")],
)
def test_model_version_names_the_version_that_computed_the_answer(client, models, path, version):
    response = infer(client, path, [tensor("input-0", ROWS)])
    assert response.get_json()["model_version"] == version
    assert response.headers["X-Model-Version"] == version
    assert output(response)["data"] == models["reg"][int(version) - 1].predict(np.array(ROWS)).tolist()


def test_a_promote_moves_unversioned_inference_to_the_new_version(client):
    X, y = regression_data(n_features=4)
    for factor in (1, 2):
        upload_ok(client, ADMIN, "moving", LinearRegression().fit(X, factor * y))
    promote(client, "moving", 1)
    assert infer(client, "moving", [tensor("input-0", ROWS)]).get_json()["model_version"] == "1"
    promote(client, "moving", 2)
    assert infer(client, "moving", [tensor("input-0", ROWS)]).get_json()["model_version"] == "2"


# -- the binary tensor data extension, with tritonclient's own codecs --------------------------


def binary_request(client, path, inputs, outputs=None):
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    headers = {"Inference-Header-Content-Length": str(json_size)} if json_size is not None else {}
    response = client.post(f"/v2/models/{path}/infer", data=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return triton.InferenceServerClient.parse_response_body(
        response.get_data(), header_length=response.headers.get("Inference-Header-Content-Length")
    )


@pytest.mark.parametrize("dtype, datatype", [(np.float32, "FP32"), (np.float64, "FP64"), (np.int64, "INT64"), (np.uint8, "UINT8")])
def test_binary_inputs_and_outputs_give_the_estimators_predictions(client, models, dtype, datatype):
    rows = np.array(np.abs(INTEGER_ROWS) if datatype.startswith(("INT", "UINT")) else ROWS, dtype=dtype)
    matrix = triton.InferInput("input-0", list(rows.shape), datatype)
    matrix.set_data_from_numpy(rows)
    result = binary_request(client, "reg", [matrix])
    assert result.get_output("predict")["parameters"]["binary_data_size"] == 8 * len(rows)
    np.testing.assert_array_equal(result.as_numpy("predict"), models["reg"][0].predict(rows.astype(np.float64)))


def test_binary_bytes_inputs_and_labels_round_trip(client, models):
    frame = mixed_frame().head(4)
    size = triton.InferInput("size", [4, 1], "FP64")
    size.set_data_from_numpy(frame[["size"]].to_numpy())
    colour = triton.InferInput("colour", [4, 1], "BYTES")
    colour.set_data_from_numpy(frame[["colour"]].to_numpy(dtype=object))
    outputs = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba", binary_data=False)]
    result = binary_request(client, "mixed", [size, colour], outputs)
    assert [label.decode() for label in result.as_numpy("predict")] == models["mixed"].predict(frame).tolist()
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), models["mixed"].predict_proba(frame))
    assert "binary_data_size" not in (result.get_output("predict_proba").get("parameters") or {})


def test_binary_inputs_can_mix_with_json_inputs(client, models):
    rows = np.array(ROWS)
    inputs = []
    for k, name in enumerate(FEATURES):
        column = triton.InferInput(name, [3], "FP64")
        column.set_data_from_numpy(rows[:, k], binary_data=k % 2 == 0)
        inputs.append(column)
    result = binary_request(client, "reg", inputs, [triton.InferRequestedOutput("predict", binary_data=False)])
    assert result.as_numpy("predict").tolist() == models["reg"][0].predict(rows).tolist()


# -- auth and metrics --------------------------------------------------------------------------


def test_with_auth_for_reads_model_routes_need_a_token_and_health_does_not(build_app, admin):
    client = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()
    X, y = regression_data(n_features=4)
    upload_ok(client, admin, "m", LinearRegression().fit(X, y))
    response = client.post("/v2/models/m/versions/1/infer", json={"inputs": [tensor("input-0", ROWS)]})
    assert_error(response, 401, "Authorization: Bearer")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.get("/v2/models/m/versions/1"), 401)
    assert client.post("/v2/models/m/versions/1/infer", json={"inputs": [tensor("input-0", ROWS)]}, headers=admin).status_code == 200
    assert client.get("/v2/health/ready").status_code == 200


def test_inference_is_counted_in_the_predict_metric_families(client, models):
    before = scrape(client)
    assert infer(client, "reg/versions/2", [tensor("input-0", ROWS)]).status_code == 200
    assert infer(client, "reg/versions/2", [tensor("input-0", ROWS, "FP128")]).status_code == 400
    after = scrape(client)
    for status in ("200", "400"):
        counted = value(after, "registry_predictions_total", model="reg", version="2", status=status)
        assert counted - (value(before, "registry_predictions_total", model="reg", version="2", status=status) or 0) == 1
    assert value(after, "registry_predict_seconds_count", model="reg") >= 1


def test_the_v2_routes_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {"/v2", "/v2/health/ready", "/v2/models/{name}/versions/{version}/infer", "/v2/models/{name}/ready"} <= set(paths)
    assert "application/octet-stream" in paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]


# -- compressed bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("encoding, compress", [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_gzip_and_deflate_bodies_are_decompressed(client, models, encoding, compress):
    body = compress(json.dumps({"inputs": [tensor("input-0", ROWS)]}).encode())
    response = client.post("/v2/models/reg/infer", data=body, headers={"Content-Encoding": encoding})
    assert output(response)["data"] == models["reg"][0].predict(np.array(ROWS)).tolist()


def test_unversioned_inference_follows_the_aliass_canary_and_names_its_route(client):
    X, y = regression_data(n_features=4)
    for factor in (1, 3):
        upload_ok(client, ADMIN, "routed", LinearRegression().fit(X, factor * y))
    promote(client, "routed", 1)
    started = client.put("/models/routed/aliases/production/rollout", headers=ADMIN,
                         json={"canary": {"version": 2, "percent": 100}, "reason": "all to the canary"})
    assert started.status_code == 200, started.get_json()

    routed = infer(client, "routed", [tensor("input-0", ROWS)])
    pinned = infer(client, "routed/versions/1", [tensor("input-0", ROWS)])

    assert routed.get_json()["model_version"] == "2" and routed.headers["X-Model-Route"] == "canary"
    assert pinned.get_json()["model_version"] == "1" and "X-Model-Route" not in pinned.headers
