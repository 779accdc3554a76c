"""The predict routes' one door (api/fast_predict.py): every request on them is answered without Flask's
dispatch (JSON or CSV, gzip, a query, a token), with the headers every route sends, a failure too (answered once,
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


def test_a_plain_prediction_never_reaches_flask_and_answers_with_every_routes_headers(client, flask_saw, name):
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
def test_every_prediction_is_answered_by_the_one_door_and_only_another_route_goes_to_flask(client, flask_saw, name,
                                                                                         how):
    url, kwargs = f"/models/{name}/production/predict", {"json": ROW}
    if how == "query string":
        url += "?proba=false&explain=false"
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
        assert response.status_code == 404
        assert flask_saw == [url]  # no route of the door's: Flask's
    else:
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["version"] == 1
        assert flask_saw == []


@pytest.mark.parametrize("url, body, headers, status", [
    ("/models/{name}/production/predict", ROW, {"X-Request-ID": "given-1"}, "200 OK"),
    ("/models/{name}/2/predict", {"instances": [[1, 2, 3], [4, 5, 6]]}, {"X-Request-ID": "given-2"}, "200 OK"),
    ("/models/{name}/predict", {"dataframe_split": {"columns": ["x0", "x1", "x2"], "data": [[1, 1, 1]]}},
     {"X-Request-ID": "given-3"}, "200 OK"),
    ("/models/{name}/production/predict", {"instances": [[1, 2]]}, {"X-Request-ID": "bad-columns"},
     "422 UNPROCESSABLE ENTITY"),
    ("/models/{name}/production/predict", {"instances": [PROBE_ROW], "return_proba": "yes"}, {"X-Request-ID": "flag"},
     "422 UNPROCESSABLE ENTITY"),
    ("/models/{name}/9/predict", ROW, {"X-Request-ID": "no-version"}, "404 NOT FOUND"),
    ("/models/nobody-{name}/production/predict", ROW, {"X-Request-ID": "no-model"}, "404 NOT FOUND"),
    ("/models/{name}/production/predict", b'{"instances": [[1, 1', {"X-Request-ID": "torn"}, "400 BAD REQUEST"),
    ("/models/{name}/production/predict", b'', {"X-Request-ID": "empty"}, "400 BAD REQUEST"),
    ("/models/{name}/production/predict", b'{"instances": [[NaN, 1, 1]]}', {"X-Request-ID": "nan"},
     "422 UNPROCESSABLE ENTITY"),
    ("/models/{name}/production/predict", ROW, {"X-Request-ID": "late", "X-Request-Timeout": "soon"},
     "400 BAD REQUEST"),
])
def test_an_answer_or_a_problem_has_the_status_line_and_headers_of_any_route(client, name, url, body, headers, status):
    url = url.format(name=name)
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, bytes) else {"json": body}
    response = client.post(url, headers=headers, **kwargs)
    flasks = client.get("/models", headers={"X-Request-ID": headers["X-Request-ID"]})
    assert response.status == status  # the status line as Werkzeug writes it: "422 UNPROCESSABLE ENTITY"
    shared = {key for key in flasks.headers.keys() if key not in ("Content-Type", "Content-Length")}
    assert {key: response.headers[key] for key in shared} == {key: flasks.headers[key] for key in shared}
    assert response.mimetype == ("application/json" if status == "200 OK" else "application/problem+json")


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
def test_a_large_body_is_answered_as_the_standard_parser_would_have_it(client, name, body, monkeypatch):
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, bytes) else {"json": body}
    compiled = client.post(f"/models/{name}/production/predict", **kwargs)
    monkeypatch.setattr(json_rows, "FROM_BYTES", float("inf"))  # every body parsed by orjson alone
    standard = client.post(f"/models/{name}/production/predict", **kwargs)
    assert compiled.status_code == standard.status_code and compiled.get_data() == standard.get_data()


def test_a_large_bodys_rows_are_read_by_the_compiled_reader_and_predicted_exactly(client, name, monkeypatch):
    read = []
    split = json_rows.split
    monkeypatch.setattr(json_rows, "split", lambda data, max_rows: read.append(split(data, max_rows)) or read[-1])
    response = client.post(f"/models/{name}/production/predict", json={"instances": LARGE})
    assert response.status_code == 200
    assert len(read) == 1 and read[0] is not None  # the rows went through the compiled reader
    assert response.get_json()["predictions"] == scaled_sum(1.0).predict(np.array(LARGE)).tolist()


def test_over_https_a_prediction_sends_hsts_as_any_route_does(client, name):
    fast = client.post(f"/models/{name}/predict", json=ROW, base_url="https://localhost")
    flasks = client.get("/models", base_url="https://localhost")
    assert fast.status_code == flasks.status_code == 200
    assert fast.headers["Strict-Transport-Security"] == flasks.headers["Strict-Transport-Security"]


def test_a_routed_answer_names_its_route_and_the_sticky_key_keeps_it(client, name, ci):
    rollout = {"canary": {"version": 2, "percent": 50}, "sticky_header": "X-User"}
    assert client.put(f"/models/{name}/aliases/production/rollout", json=rollout, headers=ci).status_code == 200
    for user in ("ann", "bob", "cy", "dee"):
        first, again = (client.post(f"/models/{name}/predict", json=ROW, headers={"X-User": user}) for _ in "12")
        assert first.headers["X-Model-Route"] == again.headers["X-Model-Route"]  # the sticky key routes alike
        assert first.headers["X-Model-Route"] == {"1": "primary", "2": "canary"}[first.headers["X-Model-Version"]]
        assert first.get_json() == again.get_json()


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


def test_where_reads_need_a_token_the_door_checks_it_and_limits_failures(app, client, flask_saw, name, ci):
    given = settings_of(app)
    app.extensions["settings"] = replace(given, access=replace(given.access, require_auth_for_reads=True))
    assert_problem(client.post(f"/models/{name}/predict", json=ROW), 401)
    assert client.post(f"/models/{name}/predict", json=ROW, headers=ci).status_code == 200
    wrong = {"Authorization": "Bearer wrong"}
    for _ in range(3):
        assert_problem(client.post(f"/models/{name}/predict", json=ROW, headers=wrong), 401)
    refused = client.post(f"/models/{name}/predict", json=ROW, headers=wrong)
    assert_problem(refused, 429)
    assert int(refused.headers["Retry-After"]) > 0
    assert flask_saw == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_method_on_a_predict_route_is_refused_with_the_one_it_takes(client, name, method):
    response = client.open(f"/models/{name}/predict", method=method)
    assert_problem(response, 405)
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize("headers, data, status, says", [
    ({"Content-Type": "text/plain"}, b"1,1,1", 415, "application/json or text/csv, not text/plain"),
    ({"Content-Type": "application/json", "Content-Encoding": "br"}, b"{}", 415, "'br' is not supported"),
    ({"Content-Type": "application/json", "Content-Encoding": "gzip"}, b"not gzip", 400, "not valid gzip"),
])
def test_a_body_the_door_cannot_read_is_refused_with_a_problem(client, name, headers, data, status, says):
    assert_problem(client.post(f"/models/{name}/predict", data=data, headers=headers), status, says)


def test_a_body_over_the_limit_is_refused_unread(build_app, name):
    client = build_app(MAX_PREDICT_MB=1).test_client()
    assert_problem(client.post(f"/models/{name}/predict", data=b"[" * (1024 * 1024 + 1),
                               content_type="application/json"), 413)


def test_a_gzip_body_with_a_query_is_decoded_and_parsed_once(client, flask_saw, name, monkeypatch):
    from api import content
    decoded, decode = [], content.decode_json
    monkeypatch.setattr(content, "decode_json", lambda data, *args, **kwargs: (decoded.append(data),
                                                                               decode(data, *args, **kwargs))[1])
    response = client.post(f"/models/{name}/predict?explain=true", data=gzip.compress(b'{"instances": [[1, 1, 1]]}'),
                           headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.get_json()
    assert decoded == [b'{"instances": [[1, 1, 1]]}']  # decompressed, then parsed once
    assert "explanations" in response.get_json() and flask_saw == []


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


def test_a_classifiers_probabilities_are_answered_by_the_body_or_the_query(client, ci):
    X, y = classification_data()
    upload_ok(client, ci, "fast-classifier", LogisticRegression().fit(X, y))
    body = {"instances": X[:3].tolist(), "return_proba": True}
    fast = client.post("/models/fast-classifier/1/predict", json=body)
    by_query = client.post("/models/fast-classifier/1/predict?proba=true", json={"instances": X[:3].tolist()})
    assert fast.status_code == 200 and fast.get_json() == by_query.get_json()
    assert fast.get_json()["probabilities"] == LogisticRegression().fit(X, y).predict_proba(X[:3]).tolist()


def _predictions_counted(client, name: str) -> dict[tuple[str, str], float]:
    """``registry_predictions_total`` of ``name``: {(version, status): count}."""
    text = client.get("/metrics").get_data(as_text=True)
    return {(sample.labels["version"], sample.labels["status"]): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == "registry_predictions_total" and sample.labels.get("model") == name}


def test_a_traced_request_whose_edge_fails_unexpectedly_leaves_no_span_current(client, name, monkeypatch, request):
    # The door opens a request's span before its refusal check and its parse: whatever fails there, the span
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

    response = client.post(f"/models/{name}/production/predict", json=ROW)

    assert_problem(response, 500, "unexpected error")  # as the app's error handler answers any route
    assert response.get_json()["trace_id"] == queued.get_finished_spans()[0].context.trace_id.to_bytes(16).hex()

    assert tracing.trace_id() is None
    assert [span.attributes["http.response.status_code"] for span in queued.get_finished_spans()] == [500]
