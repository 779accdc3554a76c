"""The predict routes' fast path (api/fast_predict.py): a plain JSON prediction is answered without
Flask's dispatch, with the answer, status and headers Flask gives it, a failure too (answered once,
counted and logged once); everything else is Flask's."""
import gzip
import threading
import uuid
from dataclasses import replace

import numpy as np
import pytest
from flask import appcontext_pushed, request
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression
from werkzeug.test import Client

from api.settings import settings_of
from bench.harness.models import expected_prediction
from registry.serving import json_rows
from tests.helpers import PROBE_ROW, assert_problem, classification_data, scaled_sum, upload_ok

ROW = {"instances": [PROBE_ROW]}


@pytest.fixture
def app(build_app):
    """Every answer and failure logged, and a tight failed-authentication limit."""
    return build_app(PREDICTION_LOG_SAMPLE=1.0, AUTH_FAILURES_PER_MINUTE=3)


@pytest.fixture
def name(client, ci):
    """A model of its own (metrics are process-wide): v1 and v2 regressors, v1 on production."""
    model = f"fast-{uuid.uuid4().hex[:8]}"
    upload_ok(client, ci, model, scaled_sum(1.0))
    upload_ok(client, ci, model, scaled_sum(2.0))
    assert client.post(f"/models/{model}/versions/1/promote", json={}, headers=ci).status_code == 200
    return model


@pytest.fixture
def flask_saw(app):
    """The paths of the predictions that reached Flask's hooks (ask for it before any request is made)."""
    seen = []
    app.before_request(lambda: seen.append(request.path) if "predict" in request.path else None)
    return seen


@pytest.fixture
def both(app):
    """A WSGI client of the app as served (fast path first) and one of Flask alone."""
    return Client(app.wsgi_app), Client(app.wsgi_app.flask_wsgi)


def test_a_plain_prediction_never_reaches_flask_and_answers_as_the_view_does(client, flask_saw, name):
    for url in (f"/models/{name}/production/predict", f"/models/{name}/1/predict", f"/models/{name}/predict"):
        response = client.post(url, json=ROW)
        assert response.status_code == 200, response.get_json()
        assert response.get_json() == {"model": name, "version": 1, "predictions": scaled_sum(1.0).predict([PROBE_ROW]).tolist()}
        assert response.headers["X-Model-Version"] == "1" and response.headers["X-Frame-Options"] == "DENY"
        assert len(response.headers["X-Request-ID"]) == 36
    charset = client.post(f"/models/{name}/predict", data=b'{"instances": [[1, 1, 1]]}',
                          headers={"Content-Type": "application/json; charset=utf-8"})
    assert charset.status_code == 200
    assert flask_saw == []


@pytest.mark.parametrize("how", ["query string", "gzip body", "csv body", "trailing slash", "no length"])
def test_what_is_not_plain_goes_to_flask_and_is_answered_as_before(client, flask_saw, name, how):
    url, kwargs = f"/models/{name}/production/predict", {"json": ROW}
    if how == "query string":
        url += "?proba=false"
    elif how == "gzip body":
        kwargs = {"data": gzip.compress(b'{"instances": [[1, 1, 1]]}'),
                  "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip"}}
    elif how == "csv body":
        kwargs = {"data": "x0,x1,x2\n1,1,1\n", "content_type": "text/csv"}
    elif how == "trailing slash":
        url += "/"
    else:
        kwargs = {"data": b'{"instances": [[1, 1, 1]]}', "content_type": "application/json",
                  "environ_overrides": {"CONTENT_LENGTH": "", "wsgi.input_terminated": True}}  # sent chunked
    response = client.post(url, **kwargs)
    if how == "trailing slash":
        assert response.status_code in (404, 405, 308)
    else:
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["version"] == 1
    assert flask_saw == [url.split("?")[0]]


@pytest.mark.parametrize("url, body, headers", [
    ("/models/{name}/production/predict", ROW, {"X-Request-ID": "given-1"}),
    ("/models/{name}/2/predict", {"instances": [[1, 2, 3], [4, 5, 6]]}, {"X-Request-ID": "given-2"}),
    ("/models/{name}/predict", {"dataframe_split": {"columns": ["x0", "x1", "x2"], "data": [[1, 1, 1]]}},
     {"X-Request-ID": "given-3"}),
    ("/models/{name}/production/predict", {"instances": [[1, 2]]}, {"X-Request-ID": "bad-columns"}),
    ("/models/{name}/production/predict", {"instances": [PROBE_ROW], "return_proba": True}, {"X-Request-ID": "proba"}),
    ("/models/{name}/production/predict", {"instances": [PROBE_ROW], "return_proba": "yes"}, {"X-Request-ID": "flag"}),
    ("/models/{name}/9/predict", ROW, {"X-Request-ID": "no-version"}),
    ("/models/nobody-{name}/production/predict", ROW, {"X-Request-ID": "no-model"}),
    ("/models/{name}/staging/predict", ROW, {"X-Request-ID": "no-alias"}),
    ("/models/{name}/production/predict", b'{"instances": [[1, 1', {"X-Request-ID": "torn"}),
    ("/models/{name}/production/predict", b'', {"X-Request-ID": "empty"}),
    ("/models/{name}/production/predict", b'{"instances": [[NaN, 1, 1]]}', {"X-Request-ID": "nan"}),
])
def test_both_paths_answer_the_same_status_body_and_headers(both, name, url, body, headers):
    url = url.format(name=name)
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, bytes) else {"json": body}
    fast, flask = (c.post(url, headers=headers, **kwargs) for c in both)
    assert fast.status == flask.status  # the status line too: "422 UNPROCESSABLE ENTITY", as Werkzeug writes it
    assert fast.get_data() == flask.get_data()
    assert sorted(fast.headers.items()) == sorted(flask.headers.items())


def _rows(count: int, width: int = 3) -> list[list[float]]:
    return np.round(np.random.default_rng(count).normal(size=(count, width)), 6).tolist()


LARGE = _rows(600)  # over json_rows.FROM_BYTES as JSON: read by the compiled reader on the fast path


@pytest.mark.parametrize("body", [
    {"instances": LARGE},
    {"instances": LARGE, "return_proba": True},
    {"instances": [*LARGE[:-1], [1, 2]]},  # a row of another length
    {"instances": _rows(600, 2)},  # every row of another width than the signature's
    {"instances": [*LARGE[:-1], [1, "2", 3]]},
    {"instances": [*LARGE[:-1], [1, None, 3]]},
    {"instances": [*LARGE[:-1], [1, True, 3]]},
    {"instances": [*LARGE[:-1], {"x0": 1, "x1": 2, "x2": 3}]},
    {"instances": LARGE, "unexpected": 1},
    {"instances": LARGE, "dataframe_records": [{"x0": 1}]},
    b'{"instances": [' + b", ".join([b"[1, 2, 3]"] * 900) + b', [1e400, 2, 3]]}',
    b'{"instances": [' + b", ".join([b"[1, 2, 3]"] * 900) + b', [NaN, 2, 3]]}',
    b'{"instances": [' + b", ".join([b"[1, 2, 3]"] * 900) + b', [01, 2, 3]]}',
    b'{"instances": [' + b", ".join([b"[1, 2, 3]"] * 900) + b"]",
])
def test_a_large_body_is_answered_as_flask_answers_it(both, name, body):
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, bytes) else {"json": body}
    fast, flask = (c.post(f"/models/{name}/production/predict", **kwargs) for c in both)
    assert fast.status_code == flask.status_code and fast.get_data() == flask.get_data()


def test_a_large_bodys_rows_are_read_by_the_compiled_reader_and_predicted_exactly(client, name, monkeypatch):
    read = []
    split = json_rows.split
    monkeypatch.setattr(json_rows, "split", lambda data, max_rows: read.append(split(data, max_rows)) or read[-1])
    response = client.post(f"/models/{name}/production/predict", json={"instances": LARGE})
    assert response.status_code == 200
    assert len(read) == 1 and read[0] is not None  # the rows went through the compiled reader
    assert response.get_json()["predictions"] == scaled_sum(1.0).predict(np.array(LARGE)).tolist()


def test_over_https_both_paths_send_hsts(both, name):
    fast, flask = (c.post(f"/models/{name}/predict", json=ROW, base_url="https://localhost") for c in both)
    assert fast.status_code == flask.status_code == 200
    assert fast.headers["Strict-Transport-Security"] == flask.headers["Strict-Transport-Security"]


def test_a_routed_answer_names_its_route_on_both_paths(both, client, name, ci):
    rollout = {"canary": {"version": 2, "percent": 50}, "sticky_header": "X-User"}
    assert client.put(f"/models/{name}/aliases/production/rollout", json=rollout, headers=ci).status_code == 200
    for user in ("ann", "bob", "cy", "dee"):
        fast, flask = (c.post(f"/models/{name}/predict", json=ROW, headers={"X-User": user}) for c in both)
        assert fast.headers["X-Model-Route"] == flask.headers["X-Model-Route"]  # the sticky key routes alike
        assert fast.get_json() == flask.get_json()


def test_a_failed_prediction_is_answered_once_by_the_fast_path_counted_and_logged_once(app, flask_saw, client, name,
                                                                                       ci, analyst):
    response = client.post(f"/models/{name}/production/predict", json={"instances": [[1, 2]]},
                           headers={"X-Request-ID": "wrong-width"})
    assert_problem(response, 422, "expected 3 features")
    assert flask_saw == []  # never answered again by Flask
    assert response.headers["X-Request-ID"] == "wrong-width"
    assert _predictions_counted(client, name) == {("1", "422"): 1.0}
    assert app.extensions["model_registry"].prediction_log.flush()
    items = client.get(f"/models/{name}/predictions?limit=100", headers=analyst).get_json()["items"]
    assert [(item["request_id"], item["status"]) for item in items] == [("wrong-width", 422)]


@pytest.fixture
def contexts_pushed(app):
    """The app contexts the app pushed in the test's own thread from now on (the prediction log's writer
    pushes its own in another thread)."""
    pushed = []
    here = threading.get_ident()

    def noted(sender, **_):
        if threading.get_ident() == here:
            pushed.append(sender)

    appcontext_pushed.connect(noted, app, weak=False)
    yield pushed
    appcontext_pushed.disconnect(noted, app)


def test_neither_an_answer_nor_a_failure_pushes_an_app_context(client, name, contexts_pushed):
    for url in (f"/models/{name}/production/predict", f"/models/{name}/2/predict"):
        assert client.post(url, json=ROW).status_code == 200  # v2 loads on this miss, in a context of its own
    contexts_pushed.clear()
    for url in (f"/models/{name}/production/predict", f"/models/{name}/2/predict", f"/models/{name}/predict"):
        response = client.post(url, json=ROW)
        assert response.status_code == 200, response.get_json()
    assert contexts_pushed == []  # the fast path's answers need none: each push and pop costs a prediction's µs
    assert_problem(client.post(f"/models/{name}/production/predict", json={"instances": [[1, 2]]}), 422,
                   "expected 3 features")
    late = client.post(f"/models/{name}/production/predict", json=ROW, headers={"X-Request-Timeout": "0.000001"})
    assert_problem(late, 503, "X-Request-Timeout of 1e-06 s passed")  # a flood's refusal is rendered the same way
    assert contexts_pushed == []  # a problem is rendered without one: a refusal must cost less than an answer
    assert_problem(client.post(f"/models/{name}/9/predict", json=ROW), 404, "9")
    assert len(contexts_pushed) == 1  # the database asked for version 9 (a miss)


def test_a_body_that_does_not_decode_is_refused_once_by_the_fast_path_and_counts_nothing(client, flask_saw, name,
                                                                                         monkeypatch):
    from api import content
    decoded, decode = [], content.decode_json
    monkeypatch.setattr(content, "decode_json", lambda data, *args, **kwargs: (decoded.append(data),
                                                                               decode(data, *args, **kwargs))[1])
    assert_problem(client.post(f"/models/{name}/predict", data=b"[[1,", content_type="application/json"), 400, "JSON")
    assert decoded == [b"[[1,"]  # parsed once, by the fast path
    assert_problem(client.post(f"/models/{name}/predict", json={"instances": [PROBE_ROW], "return_proba": 1}), 422,
                   "return_proba")
    assert len(decoded) == 2 and flask_saw == []  # neither reached Flask
    assert _predictions_counted(client, name) == {}


def test_where_reads_need_a_token_the_fast_path_steps_aside(app, client, name, ci):
    given = settings_of(app)
    app.extensions["settings"] = replace(given, access=replace(given.access, require_auth_for_reads=True))
    assert_problem(client.post(f"/models/{name}/predict", json=ROW), 401)
    assert client.post(f"/models/{name}/predict", json=ROW, headers=ci).status_code == 200


def test_an_address_over_the_failed_authentication_limit_is_still_answered_on_the_predict_route(client, name):
    for _ in range(3):
        assert_problem(client.get("/tokens", headers={"Authorization": "Bearer wrong"}), 401)
    assert_problem(client.get("/tokens", headers={"Authorization": "Bearer wrong"}), 429)

    answer = client.post(f"/models/{name}/predict", json=ROW)

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["predictions"] == [pytest.approx(expected_prediction(1.0))]


def test_the_first_prediction_of_a_process_starts_its_alias_watcher(build_app):
    client = build_app(WATCH_ALIASES=True).test_client()
    before = _watchers()
    assert client.post("/models/nobody/predict", json=ROW).status_code == 404
    assert _watchers() == before + 1


def _watchers() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "alias-watcher")


def test_a_classifiers_probabilities_are_the_same_on_both_paths(both, client, ci):
    X, y = classification_data()
    upload_ok(client, ci, "fast-classifier", LogisticRegression().fit(X, y))
    body = {"instances": X[:3].tolist(), "return_proba": True}
    fast, flask = (c.post("/models/fast-classifier/1/predict", json=body) for c in both)
    assert fast.status_code == 200 and fast.get_json() == flask.get_json()
    assert fast.get_json()["probabilities"] == LogisticRegression().fit(X, y).predict_proba(X[:3]).tolist()


def _predictions_counted(client, name: str) -> dict[tuple[str, str], float]:
    """``registry_predictions_total`` of ``name``: {(version, status): count}."""
    text = client.get("/metrics").get_data(as_text=True)
    return {(sample.labels["version"], sample.labels["status"]): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == "registry_predictions_total" and sample.labels.get("model") == name}


def test_a_traced_request_whose_edge_fails_unexpectedly_leaves_no_span_current(client, name, monkeypatch, request):
    # The fast path opens a request's span before its refusal check and its parse: whatever leaves it, the span
    # ends (a 500) and is never left current for the next request the thread answers.
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from api import fast_predict
    from registry import tracing

    queued = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(queued))
    tracing.use(provider)
    request.addfinalizer(tracing.stop)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug past every handler")

    monkeypatch.setattr(fast_predict, "refusal", broken)

    with pytest.raises(RuntimeError):
        client.post(f"/models/{name}/production/predict", json=ROW)

    assert tracing.trace_id() is None
    assert [span.attributes["http.response.status_code"] for span in queued.get_finished_spans()] == [500]
