"""The dashboard's pages and actions through the test client: what they show, who may act, CSRF."""
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from tests.helpers import ADMIN_TOKEN, PROBE_ROW, regression_data, scaled_sum, upload_ok
from tests.ui.conftest import csrf_of, submit


def test_the_models_page_lists_each_model_with_its_alias_badges(client, housing):
    page = client.get("/ui/").get_data(as_text=True)
    assert 'data-model="housing"' in page
    assert "production → v1" in page


def test_a_models_page_shows_versions_with_their_metrics_side_by_side(client, housing):
    page = client.get("/ui/models/housing").get_data(as_text=True)
    assert 'data-version="1"' in page and 'data-version="2"' in page
    assert ">r2<" in page and ">mae<" in page and "0.75" in page and "1.25" in page


def test_sorting_by_a_metric_orders_the_versions(client, housing):
    ascending = client.get("/ui/models/housing?sort=metrics.r2").get_data(as_text=True)
    descending = client.get("/ui/models/housing?sort=-metrics.r2").get_data(as_text=True)
    assert ascending.index('data-version="1"') < ascending.index('data-version="2"')
    assert descending.index('data-version="2"') < descending.index('data-version="1"')


def test_an_unknown_sort_key_shows_the_apis_detail_with_its_status(client, housing):
    response = client.get("/ui/models/housing?sort=colour")
    assert response.status_code == 422
    assert "unknown sort key" in response.get_data(as_text=True)


def test_compare_shows_metrics_a_chart_and_the_params_that_differ(client, housing):
    page = client.get("/ui/models/housing/compare?v=1&v=2").get_data(as_text=True)
    assert "<svg" in page and 'aria-label="r2 by version"' in page
    assert ">depth<" in page and ">3<" in page and ">5<" in page


@pytest.mark.parametrize("query", ["v=1", "", "v=1&v=1"])
def test_compare_with_fewer_than_two_versions_goes_back_to_the_model_page_saying_so(client, housing, query):
    response = client.get(f"/ui/models/housing/compare?{query}")
    assert response.status_code == 302 and response.headers["Location"].endswith("/ui/models/housing")
    assert "Tick at least two versions" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_compare_ranks_on_shared_evaluations_marks_production_and_says_which_way_is_better(client, housing, admin):
    for version, metrics in ((1, {"r2": 0.31, "rmse": 4.5}), (2, {"r2": 0.44, "rmse": 5.0})):
        client.post(f"/models/housing/versions/{version}/evaluations", headers=admin, json={
            "dataset": {"name": "holdout.csv", "sha256": "ab" * 32, "rows": 100}, "metrics": metrics})
    page = client.get("/ui/models/housing/compare?v=1&v=2").get_data(as_text=True)
    assert "Scores on the same rows" in page and "holdout.csv" in page
    assert '<td class="num best">0.44</td>' in page and '<td class="num best">4.5</td>' in page  # r2 up, rmse down
    assert "rmse <span class=\"muted small\">lower is better" in page and "r2 <span class=\"muted small\">higher is better" in page
    assert '<span class="badge" data-alias-of="1">production</span>' in page
    assert "do not compare fairly" in page  # the upload metrics follow, said for what they are


def test_compare_shows_nested_lineage_key_by_key(client, admin):
    for factor, run in ((1.0, "run-a"), (2.0, "run-b")):
        upload_ok(client, admin, "nested", scaled_sum(factor), {"lineage": {"mlflow": {"run_id": run, "model": "m"}}})
    page = client.get("/ui/models/nested/compare?v=1&v=2").get_data(as_text=True)
    assert ">mlflow.run_id<" in page and ">run-a<" in page and "{&#39;" not in page and ">mlflow.model<" not in page


def test_compare_with_an_unknown_version_is_a_404_page(client, housing):
    response = client.get("/ui/models/housing/compare?v=1&v=9")
    assert response.status_code == 404 and 'class="problem"' in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/ui/nothing-here", "/ui/models/housing/versions/1/nope", "/ui/models/housing/versions/x"])
def test_an_unknown_dashboard_page_is_an_html_404_and_the_api_keeps_problem_json(client, housing, path):
    response = client.get(path)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert 'class="problem"' in response.get_data(as_text=True) and "<nav" in response.get_data(as_text=True)
    assert client.get("/models/housing/nope").mimetype == "application/problem+json"


def test_the_history_is_a_timeline_of_moves(client, housing):
    page = client.get("/ui/models/housing/history").get_data(as_text=True)
    assert 'class="event promote"' in page and "production" in page


def test_the_history_shows_uploads_and_archives_among_the_moves_but_not_for_one_alias(client, admin, housing):
    assert client.delete("/models/housing/versions/2", headers=admin).status_code == 200
    page = client.get("/ui/models/housing/history").get_data(as_text=True)
    assert 'data-upload="1"' in page and 'data-upload="2"' in page and 'data-archive="2"' in page
    assert page.index('data-archive="2"') < page.index('class="event promote"') < page.index('data-upload="1"')
    assert "page 1 of 1 · 1 recorded change<" in page  # pages count the history's entries; uploads and archives fall among them
    assert "data-upload" not in client.get("/ui/models/housing/history?alias=production").get_data(as_text=True)


def test_uploads_between_two_pages_of_moves_show_on_the_page_they_fall_in(client, admin, housing, monkeypatch):
    from api.ui import pages
    monkeypatch.setattr(pages, "PER_PAGE", 1)
    upload_ok(client, admin, "housing", scaled_sum(3.0))  # after the promote of v1, before that of v3
    client.post("/models/housing/versions/3/promote", json={}, headers=admin)
    upload_ok(client, admin, "housing", scaled_sum(4.0))  # after every move
    newest, oldest = (client.get(f"/ui/models/housing/history?page={n}").get_data(as_text=True) for n in (1, 2))
    assert 'data-upload="4"' in newest and 'data-upload="3"' not in newest and 'data-upload="1"' not in newest
    assert 'data-upload="3"' in oldest and 'data-upload="1"' in oldest and 'data-upload="4"' not in oldest


def test_an_alias_page_names_the_version_it_serves_and_refreshes_itself(client, housing):
    page = client.get("/ui/models/housing/aliases/production").get_data(as_text=True)
    assert 'data-serving="1"' in page and 'hx-trigger="every 3s"' in page
    live = client.get("/ui/models/housing/aliases/production/live").get_data(as_text=True)
    assert 'data-serving="1"' in live and "<html" not in live


def test_an_unknown_model_is_a_404_page(client):
    response = client.get("/ui/models/nope")
    assert response.status_code == 404 and "does not exist" in response.get_data(as_text=True)


def test_signing_in_sets_an_http_only_same_site_cookie_and_never_the_token(client, sign_in):
    cookie = sign_in(ADMIN_TOKEN).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ADMIN_TOKEN not in cookie


def test_a_wrong_token_does_not_sign_in(client):
    response = submit(client, "/ui/sign-in", token="not-a-token")
    assert response.status_code == 400 and "not valid" in response.get_data(as_text=True)
    assert "Signed in as" not in client.get("/ui/").get_data(as_text=True)


def test_sign_in_only_redirects_inside_the_dashboard(client):
    token = csrf_of(client.get("/ui/sign-in"))
    response = client.post("/ui/sign-in?next=https://evil.example/", data={"csrf_token": token, "token": ADMIN_TOKEN})
    assert response.headers["Location"] == "/ui/"


def test_promoting_through_the_dashboard_moves_the_alias_and_records_the_reason(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/versions/2/promote", alias="production", reason="better r2")
    assert response.status_code == 302
    assert client.get("/models/housing/aliases").get_json() == {"production": 2}
    event = client.get("/models/housing/history").get_json()["items"][0]
    assert (event["to_version"], event["reason"], event["actor"]) == (2, "better r2", "admin")


def test_a_post_without_a_valid_csrf_token_changes_nothing(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    for token in (None, "forged"):
        fields = {"alias": "production", "reason": "sneaky"} | ({"csrf_token": token} if token else {})
        response = client.post("/ui/models/housing/versions/2/promote", data=fields)
        assert response.status_code == 400
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_an_action_needs_a_reason(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/versions/2/promote", alias="production", reason="")
    assert response.status_code == 400 and "say why" in response.get_data(as_text=True)
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_a_reason_with_control_characters_is_refused_by_the_form(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/versions/2/promote", alias="production",
                      reason="fine\x1b[2K\rrolled back by alice")
    assert response.status_code == 400 and "no control characters" in response.get_data(as_text=True)
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_rollback_through_the_dashboard_undoes_the_last_promote(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    submit(client, "/ui/models/housing/versions/2/promote", alias="production", reason="try v2")
    response = submit(client, "/ui/models/housing/rollback", alias="production", reason="v2 misbehaves")
    assert response.status_code == 302
    assert client.get("/models/housing/aliases").get_json() == {"production": 1}


def test_a_refused_action_shows_the_servers_problem_detail(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/versions/1/archive", reason="old")
    assert response.status_code == 409
    assert "is the target of alias(es) production" in response.get_data(as_text=True)


def test_archiving_through_the_dashboard_archives_the_version(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    assert submit(client, "/ui/models/housing/versions/2/archive", reason="superseded").status_code == 302
    assert client.get("/models/housing/versions/2").get_json()["status"] == "archived"


def test_actions_need_a_signed_in_token(client, housing):
    response = client.get("/ui/models/housing/versions/2/promote")
    assert response.status_code == 302 and response.headers["Location"].startswith("/ui/sign-in")


def test_a_ci_token_may_promote_but_not_archive(client, housing, admin, sign_in):
    token = client.post("/tokens", json={"name": "ci-ui", "role": "ci"}, headers=admin).get_json()["token"]
    sign_in(token)
    assert client.get("/ui/models/housing/versions/2/promote").status_code == 200
    response = client.get("/ui/models/housing/versions/2/archive")
    assert response.status_code == 302
    assert "needs admin" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_a_revoked_token_signs_its_sessions_out(client, housing, admin, sign_in):
    token = client.post("/tokens", json={"name": "ci-gone", "role": "ci"}, headers=admin).get_json()["token"]
    sign_in(token)
    assert client.delete("/tokens/ci-gone", headers=admin).status_code == 204
    assert client.get("/ui/models/housing/versions/2/promote").status_code == 302


def test_signing_out_needs_the_csrf_token_and_ends_the_session(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    client.post("/ui/sign-out", data={})
    assert "Signed in as" in client.get("/ui/").get_data(as_text=True)
    token = csrf_of(client.get("/ui/"))
    client.post("/ui/sign-out", data={"csrf_token": token})
    assert "Signed in as" not in client.get("/ui/").get_data(as_text=True)


def test_with_require_auth_for_reads_pages_ask_to_sign_in(build_app, housing):
    private = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()
    response = private.get("/ui/models/housing")
    assert response.status_code == 302 and response.headers["Location"].startswith("/ui/sign-in")


def test_the_dashboards_assets_are_served_by_the_service_itself(client):
    page = client.get("/ui/").get_data(as_text=True)
    assert "https://" not in page.split("<main")[0]
    assert client.get("/ui/static/vendor/htmx-2.0.11.min.js").status_code == 200
    assert client.get("/ui/static/ui.css").status_code == 200


def test_starting_a_canary_through_the_dashboard_shows_it_on_the_models_and_alias_pages(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/aliases/production/rollout",
                      canary_version="2", canary_percent="10", sticky_header="X-User-Id", reason="try v2 on a tenth")
    assert response.status_code == 302
    assert client.get("/models/housing/aliases/production/rollout").get_json()["canary"]["percent"] == 10
    assert "canary v2 10%" in client.get("/ui/").get_data(as_text=True)
    live = client.get("/ui/models/housing/aliases/production/live").get_data(as_text=True)
    assert 'data-rollout-state="running"' in live and 'data-role="canary"' in live and "X-User-Id" in live


def test_a_half_filled_canary_is_refused_by_the_form_and_changes_nothing(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/aliases/production/rollout", canary_version="2", reason="oops")
    assert response.status_code == 400 and "give both the version and its share" in response.get_data(as_text=True)
    assert client.get("/models/housing/aliases/production/rollout").status_code == 404


def test_completing_and_aborting_a_rollout_through_the_dashboard(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    submit(client, "/ui/models/housing/aliases/production/rollout", canary_version="2", canary_percent="50", reason="half")
    assert submit(client, "/ui/models/housing/aliases/production/rollout/complete", reason="looks good").status_code == 302
    assert client.get("/models/housing/aliases").get_json() == {"production": 2}
    submit(client, "/ui/models/housing/aliases/production/rollout", shadow_version="1", shadow_percent="20", reason="watch v1")
    assert submit(client, "/ui/models/housing/aliases/production/rollout/abort", reason="enough").status_code == 302
    actions = [e["action"] for e in client.get("/models/housing/history").get_json()["items"]]
    assert actions[:4] == ["rollout_abort", "rollout_start", "rollout_promote", "rollout_start"]


def test_a_refused_rollout_shows_the_servers_detail(client, housing, sign_in, admin):
    X, y = regression_data(n_features=2)
    upload_ok(client, admin, "housing", LinearRegression().fit(X, y))  # v3 takes two columns, production three
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/aliases/production/rollout", canary_version="3", canary_percent="10",
                      reason="other columns")
    assert response.status_code == 422 and 'class="problem"' in response.get_data(as_text=True)


def test_the_rollout_form_offers_the_other_ready_versions_and_never_the_primary(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    page = client.get("/ui/models/housing/aliases/production/rollout").get_data(as_text=True)
    assert '<option value="2">v2 · linear' in page and '<option value="1">' not in page
    response = submit(client, "/ui/models/housing/aliases/production/rollout", canary_version="1", canary_percent="10",
                      reason="self")
    assert response.status_code == 400 and "Not a valid choice" in response.get_data(as_text=True)


def test_promote_another_version_picks_from_the_versions_the_alias_does_not_serve(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    alias_page = client.get("/ui/models/housing/aliases/production").get_data(as_text=True)
    assert 'href="/ui/models/housing/aliases/production/promote">Promote another version' in alias_page
    form = client.get("/ui/models/housing/aliases/production/promote").get_data(as_text=True)
    assert '<option value="2">' in form and '<option value="1">' not in form
    response = submit(client, "/ui/models/housing/aliases/production/promote", version="2", reason="v2 is better")
    assert response.status_code == 302
    assert client.get("/models/housing/aliases").get_json() == {"production": 2}


def test_rollback_picks_the_alias_and_only_versions_it_served_before(client, housing, sign_in, admin):
    for number in (2, 1, 2):
        client.post(f"/models/housing/versions/{number}/promote", json={"alias": "staging"}, headers=admin)
    sign_in(ADMIN_TOKEN)
    form = client.get("/ui/models/housing/rollback?alias=staging").get_data(as_text=True)
    assert '<option selected value="staging">staging</option>' in form and '<option value="production">' in form
    assert '<option value="1">v1</option>' in form and '<option value="2">' not in form
    response = submit(client, "/ui/models/housing/rollback?alias=staging", alias="staging", to_version="1", reason="back")
    assert response.status_code == 302
    assert client.get("/models/housing/aliases").get_json() == {"production": 1, "staging": 1}


def test_a_model_page_ranks_versions_on_one_evaluation_dataset(client, housing, admin):
    for version, r2 in ((1, 0.31), (2, 0.44)):
        response = client.post(f"/models/housing/versions/{version}/evaluations", headers=admin, json={
            "dataset": {"name": "holdout.csv", "sha256": "ab" * 32, "rows": 100}, "metrics": {"r2": r2}})
        assert response.status_code == 201, response.get_json()
    page = client.get("/ui/models/housing?eval_sort=-metrics.r2").get_data(as_text=True)
    assert "holdout.csv" in page
    assert page.index('data-evaluated="2"') < page.index('data-evaluated="1"')


def memory_row(page: str, heading: str) -> str:
    """The figure in the operations page's row named ``heading``."""
    row = page[page.index(f'<th scope="row">{heading}</th>'):]
    return row[row.index('class="num">') + len('class="num">'):row.index("</td>")]


def test_the_operations_page_shows_how_the_workers_use_their_model_memory(client, housing):
    before = client.get("/ui/operations").get_data(as_text=True)
    assert client.post("/models/housing/2/predict", json={"instances": [PROBE_ROW]}).status_code == 200
    assert client.post("/models/housing/2/predict", json={"instances": [PROBE_ROW]}).status_code == 200

    after = client.get("/ui/operations").get_data(as_text=True)
    assert "Models in memory" in after and 'href="/ui/operations"' in after
    for heading, grown in (("Requests by version had to load it", 1), ("Requests by version found it loaded", 1)):
        assert float(memory_row(after, heading)) == float(memory_row(before, heading)) + grown, heading
    assert memory_row(after, "Budget of each worker").endswith(" MB")
    held, unit = memory_row(after, "Loaded versions hold").split()
    assert float(held) > 0 and unit in ("KB", "MB")
    assert memory_row(after, "Served forms on this machine").startswith("2 · ")  # v1 (aliased) and v2


def logged_traffic(app, client, admin, shift: float) -> None:
    """Every request of housing logged: a training reference, 12 answered requests of 10 rows (x0 moved by
    ``shift``), each labelled with its answers + 0.5."""
    assert client.patch("/models/housing", json={"prediction_log": {"sample": 1}}, headers=admin).status_code == 200
    app.extensions["model_registry"].prediction_log.refresh()
    rng = np.random.default_rng(11)
    reference = {"source": "training", "instances": rng.normal(size=(500, 3)).tolist()}
    assert client.put("/models/housing/versions/1/reference", json=reference, headers=admin).status_code == 200
    labels = []
    for i in range(12):
        rows = rng.normal(size=(10, 3))
        rows[:, 0] += shift
        answered = client.post("/models/housing/predict", json={"instances": rows.tolist()}, headers={"X-Request-ID": f"mon-{i}"})
        labels.append({"request_id": f"mon-{i}", "label": [p + 0.5 for p in answered.get_json()["predictions"]]})
    assert app.extensions["model_registry"].prediction_log.flush()
    assert client.post("/models/housing/feedback", json={"items": labels}, headers=admin).get_json()["applied"] == 12


def test_a_versions_monitoring_page_shows_its_quality_over_time_drift_and_requests_to_signed_in_tokens(
        app, client, housing, admin, sign_in):
    logged_traffic(app, client, admin, shift=3.0)

    page = client.get("/ui/models/housing/versions/1/monitoring?window=1h").get_data(as_text=True)
    assert 'data-figure="requests">12<' in page and 'data-figure="labelled">12<' in page
    assert 'data-figure="quality">0.5' in page and 'aria-label="mae over time"' in page
    assert page.count('r="4"') >= 1  # a mark for each slice with labels
    assert 'data-route="primary"' in page
    assert 'class="chart drifted" data-column="x0"' in page and 'class="chart" data-column="x1"' in page
    assert "Against its training rows (500 rows)" in page
    assert "sign in</a> with a token of role" in page and "data-request=" not in page  # inputs may be personal data

    sign_in(ADMIN_TOKEN)
    page = client.get("/ui/models/housing/versions/1/monitoring?window=1h").get_data(as_text=True)
    assert 'data-request="mon-11"' in page and 'data-request="mon-0"' in page
    assert 'href="/ui/models/housing/versions/1/monitoring"' in client.get("/ui/models/housing").get_data(as_text=True)


def test_a_monitoring_page_with_nothing_logged_says_what_to_do(client, housing):
    page = client.get("/ui/models/housing/versions/2/monitoring").get_data(as_text=True)
    assert 'data-figure="requests">0<' in page and "No label yet" in page and "Not enough rows yet" in page
    assert client.get("/ui/models/housing/versions/9/monitoring").status_code == 404


def test_the_rollout_page_shows_each_arms_live_quality(app, client, housing, admin):
    rollout = {"canary": {"version": 2, "percent": 50}, "sticky_header": "X-User"}
    assert client.put("/models/housing/aliases/production/rollout", json=rollout, headers=admin).status_code == 200
    logged_traffic(app, client, admin, shift=0.0)

    live = client.get("/ui/models/housing/aliases/production/live").get_data(as_text=True)
    assert 'data-arm="primary"' in live and 'data-arm="canary"' in live
    assert "mae 0.5" in live  # every label was its answer + 0.5, whichever arm answered


def test_the_rollout_page_shows_the_plan_its_step_and_each_gate(client, housing, admin):
    plan = {"steps": [{"percent": 10, "min_requests": 200}, {"percent": 40, "min_requests": 400}]}
    assert client.put("/models/housing/aliases/production/rollout", json={"canary": {"version": 2}, "plan": plan},
                      headers=admin).status_code == 200
    live = client.get("/ui/models/housing/aliases/production/live").get_data(as_text=True)
    assert 'data-plan-state="running"' in live and "step 1 of 2, running" in live
    assert 'data-gate="error_rate"' in live and 'data-gate="latency"' in live and 'data-gate="sample_ratio"' in live
    assert "≥ 400 requests per arm" in live and "then promote" in live


def test_a_person_pauses_resumes_and_advances_a_plan_from_the_dashboard(client, housing, admin, sign_in):
    url = "/models/housing/aliases/production/rollout"
    plan = {"steps": [{"percent": 10, "min_requests": 200}, {"percent": 40, "min_requests": 400}]}
    assert client.put(url, json={"canary": {"version": 2}, "plan": plan}, headers=admin).status_code == 200
    sign_in(ADMIN_TOKEN)
    base = "/ui/models/housing/aliases/production/rollout/plan"
    assert submit(client, f"{base}/pause", reason="sale day").status_code == 302
    assert client.get(url).get_json()["plan"]["state"] == "paused"
    assert "Resume…" in client.get("/ui/models/housing/aliases/production/live").get_data(as_text=True)
    assert submit(client, f"{base}/resume", reason="sale over").status_code == 302
    assert submit(client, f"{base}/advance", reason="seen enough").status_code == 302
    body = client.get(url).get_json()
    assert (body["plan"]["state"], body["plan"]["step"], body["canary"]["percent"]) == ("running", 2, 40)
    assert client.get(f"{base}/celebrate").status_code == 404


def test_the_history_says_what_each_rollout_did_and_a_fractional_share_is_taken(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/aliases/production/rollout", canary_version="2", canary_percent="2.5",
                      shadow_version="", shadow_percent="", reason="a sliver")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert client.get("/models/housing/aliases/production/rollout").get_json()["canary"]["percent"] == 2.5
    page = " ".join(client.get("/ui/models/housing/history").get_data(as_text=True).split())
    assert "production</a> on v1: canary v2 at 2.5%" in page
    live = " ".join(client.get("/ui/models/housing/aliases/production/live").get_data(as_text=True).split())
    assert "rollout start on v1: canary v2 at 2.5%" in live and "v1 → v1" not in live


def test_promoting_to_a_new_alias_says_so_not_from_version_none(client, housing, sign_in):
    sign_in(ADMIN_TOKEN)
    response = submit(client, "/ui/models/housing/versions/2/promote", alias="staging", reason="try it")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "to version 2 (the alias is new)" in page and "None" not in page


def test_lists_page_both_ways_with_their_totals(client, admin, monkeypatch):
    from api.ui import pages
    monkeypatch.setattr(pages, "PER_PAGE", 2)
    for name in ("a-model", "b-model", "c-model"):
        upload_ok(client, admin, name, scaled_sum(1.0))
    first = client.get("/ui/").get_data(as_text=True)
    assert "page 1 of 2 · 3 models" in first and 'rel="next" href="/ui/?page=2"' in first and 'rel="prev"' not in first
    second = client.get("/ui/?page=2").get_data(as_text=True)
    assert 'data-model="c-model"' in second and 'rel="prev" href="/ui/?page=1"' in second and 'rel="next"' not in second


def test_the_model_page_pages_its_versions_instead_of_stopping(client, admin, monkeypatch):
    from api.ui import pages
    monkeypatch.setattr(pages, "PER_PAGE", 2)
    for factor in (1.0, 2.0, 3.0):
        upload_ok(client, admin, "many", scaled_sum(factor))
    page = client.get("/ui/models/many?page=2").get_data(as_text=True)
    assert 'data-version="1"' in page and 'data-version="3"' not in page and "page 2 of 2 · 3 versions" in page


def test_the_history_pages_both_ways(client, admin, housing, monkeypatch):
    from api.ui import pages
    monkeypatch.setattr(pages, "PER_PAGE", 1)
    client.post("/models/housing/versions/2/promote", json={}, headers=admin)
    newest = client.get("/ui/models/housing/history").get_data(as_text=True)
    older = client.get("/ui/models/housing/history?page=2").get_data(as_text=True)
    assert "Older →" in newest and "← Newer" in older and "page 2 of 2" in older
