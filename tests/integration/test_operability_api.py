"""Operability: version PATCH, the reader role, /metrics from the first scrape, and what OpenAPI declares."""
import pytest
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from registry.telemetry import PREFIX
from tests.helpers import assert_problem, scaled_sum, upload_ok

FAMILIES = {
    "registry_predictions": "counter",
    "registry_predict_seconds": "histogram",
    "registry_model_loads": "counter",
    "registry_model_load_failures": "counter",
    "registry_model_cache_evictions": "counter",
    "registry_artifacts_damaged": "gauge",
    "registry_artifact_scrub_checks": "counter",
    "registry_artifact_scrub_bytes": "counter",
    "registry_model_cache_hits": "counter",
    "registry_model_cache_misses": "counter",
    "registry_model_cache_bytes": "gauge",
    "registry_model_cache_budget_bytes": "gauge",
    "registry_model_load_seconds": "histogram",
    "registry_prediction_log_queued": "counter",
    "registry_prediction_log_written": "counter",
    "registry_prediction_log_dropped": "counter",
    "registry_prediction_log_exported": "counter",
    "registry_prediction_log_export_failures": "counter",
    "registry_prediction_log_shares_read_timestamp_seconds": "gauge",
    "registry_prediction_log_pruned": "counter",
    "registry_prediction_log_paused": "gauge",
    "registry_prediction_log_held": "gauge",
    "registry_prediction_log_withheld": "counter",
    "registry_prediction_log_explained": "counter",
    "registry_prediction_log_bytes": "gauge",
    "registry_prediction_log_rows": "gauge",
    "registry_prediction_log_max_bytes": "gauge",
    "registry_model_loaded": "gauge",
    "registry_alias_swaps": "counter",
    "registry_alias_version": "gauge",
    "registry_dependency_up": "gauge",
    "registry_routed_predictions": "counter",
    "registry_routed_predict_seconds": "histogram",
    "registry_shadow_runs": "counter",
    "registry_shadow_rows": "counter",
    "registry_shadow_abs_diff": "histogram",
    "registry_artifact_store_errors": "counter",
    "registry_predictions_in_flight": "gauge",
    "registry_admission_refused": "counter",
    "registry_shadow_shed": "counter",
    "registry_artifact_cache_fills": "counter",
    "registry_artifact_cache_evictions": "counter",
    # the monitoring sweep's figures, declared before anything was swept
    "registry_model_quality": "gauge",
    "registry_model_quality_ci_low": "gauge",
    "registry_model_quality_ci_high": "gauge",
    "registry_model_logged_requests": "gauge",
    "registry_model_labelled_requests": "gauge",
    "registry_model_label_delay_seconds": "gauge",
    "registry_model_drift_psi": "gauge",
    "registry_model_drifted": "gauge",
    "registry_model_monitoring_timestamp_seconds": "gauge",
}
PROBE = [[1.0, 1.0, 1.0]]


@pytest.fixture
def one(client, ci):
    """Model ``m`` with version 1 (metrics, lineage, tags from the upload), served as production."""
    metadata = {"metrics": {"r2": 0.8}, "lineage": {"git_commit": "abc"}, "tags": {"team": "pricing"}, "description": "first"}
    upload_ok(client, ci, "m", scaled_sum(1.0), metadata)
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200


def reader_headers(client, admin) -> dict:
    token = client.post("/tokens", json={"name": "dashboard", "role": "reader"}, headers=admin).get_json()["token"]
    return {"Authorization": f"Bearer {token}"}


# ---- PATCH a version --------------------------------------------------------------------------

def test_patching_a_version_changes_its_description_and_tags_only(client, ci, one):
    response = client.patch("/models/m/versions/1", json={"description": "the baseline", "tags": {"stage": "gold"}}, headers=ci)

    assert response.status_code == 200
    body = response.get_json()
    assert (body["description"], body["tags"]) == ("the baseline", {"stage": "gold"})
    assert (body["metrics"], body["lineage"]) == ({"r2": 0.8}, {"git_commit": "abc"})
    assert client.get("/models/m/versions/1").get_json() == body


def test_patching_only_the_tags_keeps_the_description(client, ci, one):
    body = client.patch("/models/m/versions/1", json={"tags": {}}, headers=ci).get_json()

    assert (body["description"], body["tags"]) == ("first", {})


def test_the_model_card_fields_are_patched_like_the_description_and_start_empty(client, ci, one):
    assert (client.get("/models/m/versions/1").get_json()["intended_use"],
            client.get("/models/m/versions/1").get_json()["limitations"]) == ("", "")
    card = {"intended_use": "Pricing flats in Lyon, for the sales team.", "limitations": "Not houses; not after 2026."}
    body = client.patch("/models/m/versions/1", json=card, headers=ci).get_json()
    assert (body["intended_use"], body["limitations"], body["description"]) == (*card.values(), "first")
    assert client.patch("/models/m/versions/1", json={"limitations": ""}, headers=ci).get_json()["intended_use"] == \
        card["intended_use"]


def test_an_upload_may_carry_its_model_card(client, ci):
    number = upload_ok(client, ci, "card", scaled_sum(3.0), metadata={"intended_use": "demo", "limitations": "toy data"})
    body = client.get(f"/models/card/versions/{number}").get_json()
    assert (body["intended_use"], body["limitations"]) == ("demo", "toy data")


@pytest.mark.parametrize("changes, field", [
    ({"metrics": {"r2": 0.99}}, "metrics"),
    ({"lineage": {"git_commit": "forged"}}, "lineage"),
    ({"params": {}}, "params"),
    ({"sha256": "0" * 64}, "sha256"),
    ({"description": 5}, "description"),
    ({"tags": {"team": 1}}, "tags.team"),
    ({"tags": ["a"]}, "tags"),
    ({"intended_use": None}, "intended_use"),
    ({"limitations": "x" * 10_001}, "limitations"),
])
def test_patching_anything_but_description_and_tags_is_422_and_changes_nothing(client, ci, one, changes, field):
    before = client.get("/models/m/versions/1").get_json()

    body = assert_problem(client.patch("/models/m/versions/1", json=changes, headers=ci), 422, field)

    if field in ("metrics", "lineage", "params", "sha256"):
        assert "description, tags, intended_use, limitations and (an XGBoost or LightGBM classifier's, once) " \
               "classes can" in body["detail"]
    assert client.get("/models/m/versions/1").get_json() == before


@pytest.mark.parametrize("path, status", [
    ("/models/m/versions/9", 404), ("/models/nope/versions/1", 404), ("/models/m/versions/production", 422),
])
def test_patching_an_unknown_version_or_through_an_alias_is_refused(client, ci, one, path, status):
    assert_problem(client.patch(path, json={"description": "x"}, headers=ci), status)


def test_patching_a_version_needs_json_and_a_ci_or_admin_token(client, admin, one):
    assert_problem(client.patch("/models/m/versions/1", json={"description": "x"}), 401)
    assert_problem(client.patch("/models/m/versions/1", json={"description": "x"}, headers=reader_headers(client, admin)), 403)
    assert_problem(client.patch("/models/m/versions/1", data="description=x", headers=admin,
                                content_type="application/x-www-form-urlencoded"), 415)
    assert client.patch("/models/m/versions/1", json={"description": "x"}, headers=admin).status_code == 200


# ---- the reader role --------------------------------------------------------------------------

WRITES = [
    ("post", "/models/m/versions/1/promote", {"alias": "staging"}),
    ("post", "/models/m/rollback", {}),
    ("delete", "/models/m/aliases/production", None),
    ("patch", "/models/m", {"description": "x"}),
    ("patch", "/models/m/versions/1", {"description": "x"}),
    ("delete", "/models/m/versions/1", None),
    ("post", "/models/m/versions/1/evaluations", {"dataset": {"name": "d", "sha256": "a" * 64, "rows": 1}, "metrics": {"r2": 1}}),
    ("get", "/models/m/versions/1/artifact", None),
    ("post", "/tokens", {"name": "mine", "role": "admin"}),
    ("get", "/tokens", None),
    ("delete", "/tokens/dashboard", None),
]


@pytest.mark.parametrize("method, path, body", WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_a_reader_token_may_not_write_or_manage(client, admin, one, method, path, body):
    headers = reader_headers(client, admin)
    kwargs = {"json": body} if body is not None else {}

    assert_problem(getattr(client, method)(path, headers=headers, **kwargs), 403, "'reader'")


def test_a_reader_token_reads_and_predicts_where_reads_need_a_token(build_app, admin):
    client = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()
    upload_ok(client, admin, "m", scaled_sum(1.0))
    client.post("/models/m/versions/1/promote", json={}, headers=admin)
    reader = reader_headers(client, admin)

    for path in ("/models", "/models/m", "/models/m/versions", "/models/m/versions/1", "/models/m/aliases",
                 "/models/m/history", "/models/m/versions/1/evaluations", f"/models/m/evaluations?dataset={'a' * 64}"):
        assert client.get(path, headers=reader).status_code == 200, path
        assert_problem(client.get(path), 401)
    predicted = client.post("/models/m/predict", json={"instances": PROBE}, headers=reader)
    assert predicted.status_code == 200 and predicted.get_json()["version"] == 1


def test_the_cli_creates_a_reader_token(app, client):
    token = app.test_cli_runner().invoke(args=["tokens", "create", "dash", "--role", "reader"]).output.strip()

    assert client.get("/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert_problem(client.patch("/models/m", json={}, headers={"Authorization": f"Bearer {token}"}), 403, "'reader'")


# ---- /metrics ---------------------------------------------------------------------------------

def _families(response) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(response.get_data(as_text=True))}


def test_metrics_declare_every_family_before_any_traffic_in_multiprocess_mode(build_app, tmp_path):
    empty = tmp_path / "multiproc"
    empty.mkdir()
    client = build_app(PROMETHEUS_MULTIPROC_DIR=str(empty)).test_client()

    response = client.get("/metrics")

    assert response.status_code == 200
    assert _families(response) == FAMILIES
    assert all(name.startswith(PREFIX) for name in FAMILIES)


def test_metrics_content_type_names_the_charset_once(client):
    content_type = client.get("/metrics").headers["Content-Type"]

    assert content_type.startswith("text/plain; version=")
    assert content_type.lower().count("charset=utf-8") == 1


# ---- OpenAPI ----------------------------------------------------------------------------------

@pytest.fixture
def spec(client) -> dict:
    document = client.get("/openapi.json").get_json()
    validate(document)
    return document


def test_openapi_declares_the_bearer_scheme(spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


@pytest.mark.parametrize("method, path, security", [
    ("post", "/models/{name}/versions", [{"bearerAuth": []}]),
    ("delete", "/models/{name}/aliases/{alias}", [{"bearerAuth": []}]),
    ("post", "/tokens", [{"bearerAuth": []}]),
    ("get", "/models", None),
    ("post", "/models/{name}/predict", None),
    ("get", "/metrics", None),  # open unless REQUIRE_AUTH_FOR_READS, then a metrics token (issue 67)
])
def test_openapi_says_which_operations_need_a_token(spec, method, path, security):
    assert spec["paths"][path][method].get("security") == security


def test_operations_without_auth_declare_no_security(spec):
    for path in ("/healthz", "/readyz"):
        assert "security" not in spec["paths"][path]["get"]


@pytest.mark.parametrize("method, path, statuses", [
    ("post", "/models/{name}/versions/{number}/promote", {400, 401, 403, 404, 410, 413, 415, 422, 503}),
    ("post", "/models/{name}/rollback", {400, 401, 403, 404, 409, 410, 413, 415, 422, 503}),
    ("delete", "/models/{name}/versions/{ref}", {401, 403, 404, 409, 503}),
    ("post", "/models/{name}/versions", {400, 401, 403, 409, 413, 415, 422, 503}),
    ("post", "/models/{name}/versions/{ref}/evaluations", {400, 401, 403, 404, 410, 413, 415, 422, 503}),
    ("get", "/models/{name}/aliases", {401, 404, 422, 503}),
    ("post", "/tokens", {400, 401, 403, 409, 413, 415, 422, 503}),
])
def test_operations_list_their_error_statuses_as_problem_json(spec, method, path, statuses):
    responses = spec["paths"][path][method]["responses"]

    assert statuses <= {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    for code in map(str, statuses):
        problem = spec["components"]["responses"][responses[code]["$ref"].rsplit("/", 1)[1]]
        assert problem["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
