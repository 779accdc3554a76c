"""The gRPC edge goes through the same admission as the HTTP ones (tests/integration/test_admission_api.py):
a model at its bound is RESOURCE_EXHAUSTED, a full worker UNAVAILABLE, each with the retry hint in the
trailing metadata ``retry-after`` and the message the REST routes answer; the slot freed, it answers."""
from dataclasses import replace

import grpc
import pytest

from api.grpc import protocol
from api.grpc.server import GrpcServer
from api.settings import settings_of
from bench.harness.server import free_port
from tests.helpers import PROBE_ROW, scaled_sum, upload_ok
from tests.integration.test_admission_api import holding, refused_total

INFER = f"/{protocol.SERVICE}/ModelInfer"


@pytest.fixture
def app(build_app):
    """Two predictions in flight per model, four per worker; the gRPC edge's address (set after the app is made:
    its lifecycle starts no server of its own, the test starts and stops one)."""
    made = build_app(MAX_IN_FLIGHT_PER_MODEL=2, MAX_IN_FLIGHT=4)
    given = settings_of(made)
    made.extensions["settings"] = replace(given, grpc=replace(given.grpc, bind=f"127.0.0.1:{free_port()}"))
    return made


@pytest.fixture
def infer(app, client, ci):
    """Models a, b and c (sum of three features) on production, each asked once; the ModelInfer method of the
    app's gRPC server, started for the test: ``infer(name)`` is the answer or the RpcError."""
    for name in ("a", "b", "c"):
        upload_ok(client, ci, name, scaled_sum(1.0))
        assert client.post(f"/models/{name}/versions/1/promote", json={}, headers=ci).status_code == 200
    served = GrpcServer(app)
    served.start()
    channel = grpc.insecure_channel(settings_of(app).grpc.bind)
    method = channel.unary_unary(INFER, request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=protocol.ModelInferResponse.FromString)

    def call(name: str):
        request = protocol.ModelInferRequest(model_name=name)
        request.inputs.add(name="x", datatype="FP64", shape=[1, 3]).contents.fp64_contents.extend(PROBE_ROW)
        try:
            return method.with_call(request, timeout=30)
        except grpc.RpcError as error:
            return error

    for name in ("a", "b", "c"):
        assert call(name)[0].model_version == "1"
    yield call
    channel.close()
    served.stop()


def test_a_model_at_its_bound_is_resource_exhausted_with_retry_after_while_other_models_answer(app, infer):
    before = refused_total("a", "model_busy")
    with holding(app, "a", "a"):
        refused = infer("a")
        other = infer("b")

    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "MAX_IN_FLIGHT_PER_MODEL=2" in refused.details()
    assert dict(refused.trailing_metadata())["retry-after"] == "1"
    assert other[0].outputs[0].name == "predict"
    assert refused_total("a", "model_busy") == before + 1
    assert infer("a")[0].model_version == "1"  # its slot is free again


def test_a_full_worker_is_unavailable_with_retry_after(app, infer):
    with holding(app, "a", "a", "b", "b"):
        refused = infer("c")

    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert "MAX_IN_FLIGHT=4" in refused.details()
    assert dict(refused.trailing_metadata())["retry-after"] == "1"


def test_an_answer_names_its_version_and_request_id_in_its_metadata(infer):
    answer, call = infer("a")

    sent = dict(call.initial_metadata())
    assert sent["x-model-version"] == "1" and sent["x-request-id"]
    assert answer.raw_output_contents and answer.outputs[0].shape == [1]
