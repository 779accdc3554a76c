"""Traces from real gunicorn workers to a real OTLP/HTTP receiver: the caller's ``traceparent`` is the parent
of each prediction's server span, whose children are the data plane's steps (and its shadow runs, after
the answer); the answer carries the server span's ``traceparent``, an error its ``trace_id``, and the
prediction log the trace id of each logged request."""
import secrets
import time

import grpc
import pytest
import requests

from api.grpc import protocol
from bench.harness import server
from bench.harness.models import PROBE_ROW, scaled_sum, upload
from bench.harness.otlp_receiver import OtlpReceiver
from bench.harness.traffic import move
from tests.databases import fresh_database
from tests.e2e.conftest import ADMIN_TOKEN
from tests.e2e.rollouts import change
from tests.helpers import wait_for

NAME = "traced"
SERVER = 2  # SpanKind SERVER in OTLP
ERROR = 2  # Status ERROR in OTLP
PREDICT_ROUTE = "/models/{name}/{ref}/predict"
DEADLINE = 30  # seconds for spans to arrive: the batch processor sends every 100 ms here
SHADOW_ATTEMPTS, SHADOW_DEADLINE = 3, 10  # requests, and seconds each, for one whose shadow run was not shed


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """A receiver, and gunicorn (2 workers) sending it spans; ``traced`` v1 on production with v2 as its shadow."""
    root = tmp_path_factory.mktemp("traces")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": None, "OTEL_BSP_SCHEDULE_DELAY": 100, "PREDICTION_LOG_SAMPLE": 1,
           "GRPC_BIND": f"127.0.0.1:{server.free_port()}"}
    with OtlpReceiver() as receiver, fresh_database(root) as database_url:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        with server.running(database_url, root, ADMIN_TOKEN, workers=2, env=env) as (live,):
            for factor in (1, 2):
                assert upload(live, NAME, scaled_sum(factor)).status_code == 201
            move(live, "promote", NAME, 1)
            change(live, NAME, "start", {"shadow": {"version": 2, "percent": 100}})
            yield live, receiver


def caller() -> tuple[str, str, dict]:
    """A caller's trace id and span id, and the headers that send them (sampled)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, {"traceparent": f"00-{trace_id}-{span_id}-01"}


def spans_of(receiver: OtlpReceiver, trace_id: str, *names: str, deadline: float = DEADLINE) -> dict:
    """The spans of ``trace_id`` by name, once every one of ``names`` arrived."""
    spans = receiver.wait_for(lambda found: set(names) <= {s.name for s in found if s.trace_id == trace_id}, deadline)
    return {span.name: span for span in spans if span.trace_id == trace_id}


def server_span_id(response: requests.Response, trace_id: str) -> str:
    """The span id of the answer's ``traceparent``, checked to be of ``trace_id`` and sampled."""
    version, answered_trace, span_id, flags = response.headers["traceparent"].split("-")
    assert (version, answered_trace, flags) == ("00", trace_id, "01")
    return span_id


def routed_call(live) -> tuple[str, str, str, requests.Response]:
    """A traced prediction on production that the rollout routed: its caller's trace and span ids, its request
    id and the answer. A worker that has not installed the rollout yet answers without a shadow run
    (X-Model-Route tells), so it is asked again, under a new trace and request id, until one that has answers."""
    deadline = time.monotonic() + DEADLINE
    while True:
        trace_id, parent_id, headers = caller()
        request_id = f"traced-{trace_id[:12]}"
        response = requests.post(f"{live.url}/models/{NAME}/production/predict", json={"instances": [PROBE_ROW]},
                                 headers={**headers, "X-Request-ID": request_id}, timeout=30)
        if response.headers.get("X-Model-Route") == "primary" or time.monotonic() > deadline:
            return trace_id, parent_id, request_id, response


def test_a_plain_prediction_is_a_server_span_under_the_callers_with_a_child_for_each_step(traced):
    live, receiver = traced

    for attempt in range(SHADOW_ATTEMPTS):
        trace_id, parent_id, _, response = routed_call(live)
        assert response.status_code == 200 and response.headers["X-Model-Route"] == "primary"
        span_id = server_span_id(response, trace_id)
        spans_of(receiver, trace_id, f"POST {PREDICT_ROUTE}", "resolve", "parse", "predict", "log")
        try:  # a shadow run may be shed while its worker is busy (registry_shadow_shed_total): ask again
            spans = spans_of(receiver, trace_id, "shadow", deadline=SHADOW_DEADLINE)
            break
        except AssertionError:
            if attempt == SHADOW_ATTEMPTS - 1:
                raise
    root = spans[f"POST {PREDICT_ROUTE}"]
    assert (root.span_id, root.parent_span_id, root.kind) == (span_id, parent_id, SERVER)
    assert root.attributes == {
        "http.request.method": "POST", "http.route": PREDICT_ROUTE, "url.path": f"/models/{NAME}/production/predict",
        "url.scheme": "http", "http.response.status_code": 200, "model.name": NAME, "model.ref": "production",
        "model.version": 1, "model.route": "primary", "prediction.rows": 1,
    }
    assert root.resource["service.name"] == "model-registry"
    for step in ("resolve", "parse", "predict", "log", "shadow"):
        assert spans[step].parent_span_id == span_id, step
        assert root.start_ns <= spans[step].start_ns, step
    assert spans["resolve"].attributes == {"model.name": NAME, "model.ref": "production", "model.version": 1,
                                           "model.route": "primary"}
    assert spans["parse"].attributes == spans["predict"].attributes == {"prediction.rows": 1}
    assert spans["shadow"].attributes == {"model.name": NAME, "model.ref": "production", "model.version": 2,
                                          "model.route": "shadow", "prediction.rows": 1}
    assert "explain" not in spans


def test_an_explained_prediction_through_flask_has_an_explain_span(traced):
    live, receiver = traced
    trace_id, parent_id, headers = caller()

    response = requests.post(f"{live.url}/models/{NAME}/1/predict?explain=true", json={"instances": [PROBE_ROW] * 3},
                             headers=headers, timeout=30)

    assert response.status_code == 200 and "explanations" in response.json()
    span_id = server_span_id(response, trace_id)
    spans = spans_of(receiver, trace_id, f"POST {PREDICT_ROUTE}", "explain")
    assert spans[f"POST {PREDICT_ROUTE}"].parent_span_id == parent_id
    assert spans["explain"].parent_span_id == span_id
    assert spans["explain"].attributes == {"prediction.rows": 3}
    assert spans[f"POST {PREDICT_ROUTE}"].attributes["model.ref"] == "1"


def test_a_refused_prediction_names_its_trace_and_its_span_its_status(traced):
    live, receiver = traced
    trace_id, _, headers = caller()

    response = requests.post(f"{live.url}/models/{NAME}/production/predict", json={"instances": [[1.0, 2.0]]},
                             headers=headers, timeout=30)

    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["trace_id"] == trace_id
    span_id = server_span_id(response, trace_id)
    spans = spans_of(receiver, trace_id, f"POST {PREDICT_ROUTE}", "parse")
    assert spans[f"POST {PREDICT_ROUTE}"].attributes["http.response.status_code"] == 422
    assert spans["parse"].status_code == ERROR and spans["parse"].parent_span_id == span_id


def test_a_prediction_refused_before_its_body_is_read_is_traced_and_its_problem_names_the_trace(traced):
    # The fast path refuses a passed deadline (as a model or worker at its bound) before it parses the body: the
    # refusal is still the caller's child span, named by its model, and its problem+json names the trace.
    live, receiver = traced
    trace_id, caller_span, headers = caller()

    response = requests.post(f"{live.url}/models/{NAME}/production/predict", json={"instances": [[1.0, 2.0, 3.0]]},
                             headers={**headers, "X-Request-Timeout": "0.000001"}, timeout=30)

    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["trace_id"] == trace_id
    span_id = server_span_id(response, trace_id)
    server = spans_of(receiver, trace_id, f"POST {PREDICT_ROUTE}")[f"POST {PREDICT_ROUTE}"]
    assert (server.span_id, server.parent_span_id, server.status_code) == (span_id, caller_span, ERROR)
    assert server.attributes["http.response.status_code"] == 503
    assert (server.attributes["model.name"], server.attributes["model.ref"]) == (NAME, "production")


def test_a_v2_inference_and_its_error_are_traced_too(traced):
    live, receiver = traced
    trace_id, parent_id, headers = caller()
    good = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": PROBE_ROW}]}
    bad = {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]}

    answered = requests.post(f"{live.url}/v2/models/{NAME}/infer", json=good, headers=headers, timeout=30)
    refused = requests.post(f"{live.url}/v2/models/{NAME}/versions/1/infer", json=bad, headers=headers, timeout=30)

    assert answered.status_code == 200 and refused.status_code == 400
    assert refused.json()["trace_id"] == trace_id and "error" in refused.json()
    spans = spans_of(receiver, trace_id, "POST /v2/models/{name}/infer", "POST /v2/models/{name}/versions/{version}/infer")
    assert spans["POST /v2/models/{name}/infer"].parent_span_id == parent_id
    assert spans["POST /v2/models/{name}/infer"].span_id == server_span_id(answered, trace_id)
    assert spans["POST /v2/models/{name}/versions/{version}/infer"].attributes["http.response.status_code"] == 400


def test_a_grpc_inference_is_traced_under_the_callers_traceparent_and_logged_with_its_trace_id(traced):
    live, receiver = traced
    trace_id, parent_id, headers = caller()
    request = protocol.ModelInferRequest(model_name=NAME, model_version="1")
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, 3]).contents.fp64_contents.extend(PROBE_ROW)
    request_id = f"grpc-{trace_id[:12]}"

    with grpc.insecure_channel(live.env["GRPC_BIND"]) as channel:
        infer = channel.unary_unary(f"/{protocol.SERVICE}/ModelInfer", request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=protocol.ModelInferResponse.FromString)
        _, call = infer.with_call(request, metadata=[*headers.items(), ("x-request-id", request_id)], timeout=30)
        bad = protocol.ModelInferRequest(model_name=NAME, model_version="1")
        bad.inputs.add(name="input-0", datatype="FP64", shape=[1, 2]).contents.fp64_contents.extend([1.0, 2.0])
        with pytest.raises(grpc.RpcError) as refused:
            infer(bad, metadata=list(headers.items()), timeout=30)

    version, answered_trace, span_id, flags = dict(call.initial_metadata())["traceparent"].split("-")
    assert (version, answered_trace, flags) == ("00", trace_id, "01")
    assert dict(refused.value.trailing_metadata())["trace-id"] == trace_id
    name = f"{protocol.SERVICE}/ModelInfer"
    spans = [s for s in receiver.wait_for(
        lambda found: len([s for s in found if s.trace_id == trace_id and s.name == name]) == 2, DEADLINE)
        if s.trace_id == trace_id]
    served = next(s for s in spans if s.span_id == span_id)
    assert (served.parent_span_id, served.kind) == (parent_id, SERVER)
    assert {key: served.attributes[key] for key in ("rpc.system", "rpc.method", "model.name", "model.version")} == {
        "rpc.system": "grpc", "rpc.method": "ModelInfer", "model.name": NAME, "model.version": 1}
    assert {s.name for s in spans if s.parent_span_id == span_id} >= {"resolve", "parse", "predict"}
    failed = next(s for s in spans if s.name == name and s.span_id != span_id)
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]

    def logged():
        items = requests.get(f"{live.url}/models/{NAME}/predictions?limit=1000", headers=live.headers, timeout=30).json()
        return [item for item in items["items"] if item["request_id"] == request_id]

    assert [item["trace_id"] for item in wait_for(logged, "the logged gRPC call", DEADLINE)] == [trace_id]


def test_a_request_without_traceparent_starts_a_trace_of_its_own(traced):
    live, receiver = traced

    response = requests.post(f"{live.url}/models/{NAME}/predict", json={"instances": [PROBE_ROW]}, timeout=30)

    _, trace_id, span_id, flags = response.headers["traceparent"].split("-")
    assert int(flags, 16) & 1  # sampled (the SDK marks its own trace ids random too: 03)
    root = spans_of(receiver, trace_id, "POST /models/{name}/predict")["POST /models/{name}/predict"]
    assert (root.span_id, root.parent_span_id) == (span_id, "")


def test_the_prediction_log_keeps_each_logged_requests_trace_id(traced):
    live, _ = traced

    trace_id, _, request_id, response = routed_call(live)

    assert response.status_code == 200 and response.headers["X-Model-Route"] == "primary"

    def logged():
        items = requests.get(f"{live.url}/models/{NAME}/predictions?limit=1000", headers=live.headers, timeout=30).json()
        found = [item for item in items["items"] if item["request_id"] == request_id]
        return found if len(found) == 2 else None  # the answer and its shadow run

    assert {(item["route"], item["trace_id"]) for item in wait_for(logged, "the logged rows", DEADLINE)} == {
        ("primary", trace_id), ("shadow", trace_id)}


def test_a_caller_that_does_not_sample_gets_its_trace_answered_and_nothing_sent(traced):
    live, receiver = traced
    trace_id, _, _ = caller()
    unsampled = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-00"}

    response = requests.post(f"{live.url}/models/{NAME}/production/predict", json={"instances": [[1.0]]},
                             headers=unsampled, timeout=30)
    sampled_trace, _, sampled = caller()
    requests.post(f"{live.url}/models/{NAME}/production/predict", json={"instances": [PROBE_ROW]}, headers=sampled,
                  timeout=30)

    assert response.status_code == 422 and response.json()["trace_id"] == trace_id
    assert response.headers["traceparent"].startswith(f"00-{trace_id}-") and response.headers["traceparent"].endswith("-00")
    # Once a later request's spans arrived, the unsampled one's would have been there too, had there been any
    # (both workers send every 100 ms).
    spans_of(receiver, sampled_trace, f"POST {PREDICT_ROUTE}")
    assert not [span for span in receiver.spans() if span.trace_id == trace_id]


@pytest.mark.parametrize("hostile", [
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper-case hex
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the forbidden version
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-" + "a" * 600,  # version 00 with more, and too long
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\xe9",  # a non-ASCII flag
    "00-4bf92f3577b34da6a3ce929d0e0e4736",
])
def test_a_hostile_traceparent_is_ignored_and_the_request_starts_a_trace_of_its_own(traced, hostile):
    live, receiver = traced

    response = requests.post(f"{live.url}/models/{NAME}/1/predict", json={"instances": [PROBE_ROW]},
                             headers={"traceparent": hostile, "tracestate": "=,=" * 200}, timeout=30)

    assert response.status_code == 200
    _, trace_id, span_id, flags = response.headers["traceparent"].split("-")
    assert trace_id not in hostile.lower() and int(flags, 16) & 1 and "tracestate" not in response.headers
    root = spans_of(receiver, trace_id, f"POST {PREDICT_ROUTE}")[f"POST {PREDICT_ROUTE}"]
    assert (root.span_id, root.parent_span_id) == (span_id, "")


def test_a_callers_tracestate_is_answered_back_and_sent_with_the_span_and_a_malformed_one_is_dropped(traced):
    live, receiver = traced
    trace_id, parent_id, headers = caller()
    other_trace, other_parent, other_headers = caller()

    kept = requests.post(f"{live.url}/models/{NAME}/1/predict", json={"instances": [PROBE_ROW]},
                         headers={**headers, "tracestate": "vendor=opaque,other=2"}, timeout=30)
    dropped = requests.post(f"{live.url}/models/{NAME}/1/predict", json={"instances": [PROBE_ROW]},
                            headers={**other_headers, "tracestate": "not a list member!"}, timeout=30)

    assert kept.headers["tracestate"] == "vendor=opaque,other=2"
    root = spans_of(receiver, trace_id, f"POST {PREDICT_ROUTE}")[f"POST {PREDICT_ROUTE}"]
    assert (root.parent_span_id, root.trace_state) == (parent_id, "vendor=opaque,other=2")
    assert dropped.status_code == 200 and "tracestate" not in dropped.headers
    other = spans_of(receiver, other_trace, f"POST {PREDICT_ROUTE}")[f"POST {PREDICT_ROUTE}"]
    assert (other.parent_span_id, other.trace_state) == (other_parent, "")
