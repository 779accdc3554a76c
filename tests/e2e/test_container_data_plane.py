"""The data plane under pressure, in the container image (issue 45 asks each part to hold there too): with
the standard ``OTEL_*`` variables the image's workers send their spans to a real OTLP/HTTP receiver on
this machine, a caller's ``traceparent`` in and out; a flooded model's excess is refused at once (429,
Retry-After, problem+json with the trace id) while every request of another model is answered; a
caller's ``X-Request-Timeout`` that passed is refused before any compute; and a large walk runs on a
thread at nice 10, which the container's default seccomp profile allows.

The image is the one ``tests/e2e/test_container_image.py`` builds (podman reuses its cached layers). The
image's default database is SQLite under /data: the SQLite pass runs this module.
"""
import json
import re
import time
import uuid

import numpy as np
import psutil
import pytest
import requests
from sklearn.ensemble import RandomForestClassifier

from bench.harness import containers
from bench.harness.models import PROBE_ROW, expected_prediction, scaled_sum, upload
from bench.harness.otlp_receiver import OtlpReceiver
from bench.harness.overload import Callers, percentile
from tests.databases import BACKEND
from tests.e2e.podman_images import built_or_fail
from tests.e2e.test_overload import niced_threads

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="the image serves SQLite under /data by default: the SQLite pass runs it",
)

# How a container reaches this machine (podman's name for it), where the receiver listens.
HOST = "host.containers.internal"
SERVICE = "scoring-in-a-container"
# One worker of 4 threads that computes one prediction of a model at once while another model is asked, and
# refuses the rest at once (no wait for a slot): the flood below is then refused, deterministically, by one
# worker whose threads can be read from /proc.
SETTINGS = {"WEB_CONCURRENCY": 1, "WORKER_THREADS": 4, "MAX_IN_FLIGHT_PER_MODEL": 1, "MAX_IN_FLIGHT": 2,
            "ADMISSION_WAIT_MS": 0, "PREDICTION_LOG_SAMPLE": 0}
# 2,000 rows of a 300-tree forest: 600,000 walks, over LOW_PRIORITY_FROM_WALKS (200,000) by default.
HOT_ROWS, HOT_TREES = 2000, 300
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def receiver():
    """A real OTLP/HTTP receiver, listening where the container's network reaches this machine."""
    with OtlpReceiver(host="0.0.0.0") as receiving:
        yield receiving


@pytest.fixture(scope="module")
def container(receiver):
    """The image started with tracing on (spans sent every 100 ms) and the bounds above, a quiet model
    (``quiet``, one row) and a slow one (``hot``) uploaded and promoted; (container, hot's body)."""
    env = {**SETTINGS, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint_at(HOST), "OTEL_SERVICE_NAME": SERVICE,
           "OTEL_BSP_SCHEDULE_DELAY": 100}
    yield from _serving(env)


def _serving(env: dict):
    """The image started with ``env``, ``quiet`` and ``hot`` uploaded and promoted; yields (container, hot's body)
    and removes the container after."""
    built_or_fail(lambda: {"base": containers.ensure_base_image(), "registry": containers.build_image(containers.IMAGE)})
    started = containers.run(containers.IMAGE, f"registry-test-{uuid.uuid4().hex[:8]}", env=env,
                             options=("--tmpfs", "/data:rw,size=256m,U"))
    try:
        started.wait_ready()
        token = re.search(r"Admin token: (mr_\S+)", started.logs()).group(1)
        headers = {"Authorization": f"Bearer {token}"}
        rng = np.random.default_rng(0)
        X = rng.normal(size=(300, 4))
        forest = RandomForestClassifier(n_estimators=HOT_TREES, random_state=0).fit(X, X[:, 0] > 0)
        for name, model in (("quiet", scaled_sum(2)), ("hot", forest)):
            assert upload(started, name, model, headers=headers).status_code == 201
            promoted = requests.post(f"{started.url}/models/{name}/versions/1/promote", json={}, headers=headers,
                                     timeout=30)
            assert promoted.status_code == 200, promoted.text
        body = {"instances": np.round(rng.normal(size=(HOT_ROWS, 4)), 6).tolist()}
        yield started, body
    finally:
        started.remove()


def test_a_prediction_in_the_image_is_traced_to_the_collector_under_the_callers_span(container, receiver):
    started, _ = container
    trace_id = uuid.uuid4().hex

    answer = requests.post(f"{started.url}/models/quiet/production/predict", json={"instances": [PROBE_ROW]},
                           headers={"traceparent": f"00-{trace_id}-{CALLER_SPAN}-01"}, timeout=30)

    assert answer.status_code == 200 and answer.json()["predictions"] == pytest.approx([expected_prediction(2)])
    version, answered_trace, server_span, flags = answer.headers["traceparent"].split("-")
    assert (version, answered_trace, flags) == ("00", trace_id, "01") and server_span != CALLER_SPAN
    # Each span is sent once it ends, the server span after its steps, in the same batch or the next one
    names = {"POST /models/{name}/{ref}/predict", "resolve", "parse", "predict"}
    spans = receiver.wait_for(lambda found: names <= {span.name for span in found if span.trace_id == trace_id})
    ours = {span.name: span for span in spans if span.trace_id == trace_id}
    server = ours["POST /models/{name}/{ref}/predict"]
    assert (server.span_id, server.parent_span_id) == (server_span, CALLER_SPAN)
    assert server.attributes["model.name"] == "quiet" and server.attributes["model.version"] == 1
    assert server.attributes["http.response.status_code"] == 200
    assert server.resource["service.name"] == SERVICE
    assert all(ours[step].parent_span_id == server_span for step in ("resolve", "parse", "predict"))


def test_a_flood_of_one_model_is_refused_fast_while_every_request_of_another_is_answered(container, receiver):
    started, body = container
    hot, quiet = f"{started.url}/models/hot/predict", f"{started.url}/models/quiet/predict"
    with Callers(quiet, _json({"instances": [PROBE_ROW]}), interval=0.05) as steady:
        time.sleep(0.5)  # the quiet model is asked: the hot model's bound holds
        with Callers(hot, _json(body), threads=6) as flood:
            time.sleep(4)
    flooded = flood.replies
    answered = [reply for reply in flooded if reply.status == 200]
    refused = [reply for reply in flooded if reply.status == 429]

    assert {reply.status for reply in steady.replies} == {200}
    assert answered and refused and len(answered) + len(refused) == len(flooded)
    assert all(reply.retry_after == "1" and reply.content_type == "application/problem+json" for reply in refused)
    assert percentile(refused, 50) < percentile(answered, 50)


def test_a_deadline_that_passed_is_refused_before_any_compute(container):
    started, body = container

    late = requests.post(f"{started.url}/models/hot/predict", json=body, headers={"X-Request-Timeout": "0.000001"},
                         timeout=30)

    assert late.status_code == 503 and late.headers["Retry-After"] == "1"
    assert late.headers["Content-Type"] == "application/problem+json"
    assert "X-Request-Timeout of 1e-06 s passed before the prediction could start" in late.json()["detail"]
    assert late.json()["trace_id"] == late.headers["traceparent"].split("-")[1]  # the refusal is traced too


def test_a_large_walk_in_the_image_runs_on_a_thread_at_nice_10(container):
    started, body = container
    master = psutil.Process(int(containers.podman("inspect", "--format", "{{.State.Pid}}", started.name).stdout))
    (worker,) = master.children()
    seen: set[int] = set()
    with Callers(f"{started.url}/models/hot/predict", _json(body), threads=2) as callers:
        deadline = time.monotonic() + 30
        while not seen:
            assert time.monotonic() < deadline, "no thread of the worker was seen at nice 10"
            seen = niced_threads(worker.pid)
            time.sleep(0.002)

    assert {reply.status for reply in callers.replies} <= {200, 429}
    assert worker.nice() == 0 and "cannot run at a lower CPU priority" not in started.logs()


def _json(body: dict) -> bytes:
    return json.dumps(body).encode()
