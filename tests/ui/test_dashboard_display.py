"""What the dashboard's pages show as a person reads them (issue 47): durations in people's units,
compare saying what was and was not recorded, and only the actions that can succeed."""
import re
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select

from registry.db import db
from registry.monitoring.tables import LoggedPrediction
from tests.helpers import ADMIN_TOKEN, scaled_sum, upload_ok


def test_the_label_delay_is_a_duration_not_a_floats_digits(app, client, housing, admin):
    assert client.patch("/models/housing", json={"prediction_log": {"sample": 1}}, headers=admin).status_code == 200
    app.extensions["model_registry"].prediction_log.refresh()
    answered = client.post("/models/housing/predict", json={"instances": np.ones((2, 3)).tolist()}, headers={"X-Request-ID": "late"})
    assert app.extensions["model_registry"].prediction_log.flush()
    feedback = {"items": [{"request_id": "late", "label": answered.get_json()["predictions"]}]}
    assert client.post("/models/housing/feedback", json=feedback, headers=admin).get_json()["applied"] == 1
    with app.app_context():  # labelled 7.38701 s after the answer
        logged = db.session.execute(select(LoggedPrediction).where(LoggedPrediction.request_id == "late")).scalar_one()
        logged.labelled_at = logged.at + timedelta(seconds=7.38701)
        db.session.commit()

    page = client.get("/ui/models/housing/versions/1/monitoring?window=1h").get_data(as_text=True)

    assert "<dt>Label delay (median)</dt><dd>7.4 s</dd>" in page


@pytest.mark.parametrize("arm", ["canary", "shadow"])
def test_a_version_a_rollout_runs_is_never_offered_for_archiving(client, housing, admin, sign_in, arm):
    rollout = {arm: {"version": 2, "percent": 10}, "reason": "try"}
    assert client.put("/models/housing/aliases/production/rollout", json=rollout, headers=admin).status_code == 200
    sign_in(ADMIN_TOKEN)

    row = version_row(client.get("/ui/models/housing").get_data(as_text=True), 2)

    assert "Promote…" in row and "Archive…" not in row  # archiving it answers 409 while the canary runs
    assert "Archive…" not in client.get("/ui/models/housing/versions/2").get_data(as_text=True)
    assert client.delete("/models/housing/aliases/production/rollout", json={"reason": "done"}, headers=admin).status_code == 200
    assert "Archive…" in version_row(client.get("/ui/models/housing").get_data(as_text=True), 2)


def version_row(page: str, number: int) -> str:
    """The model page's table row of version ``number``."""
    start = page.index(f'<tr data-version="{number}"')
    return page[start:page.index("</tr>", start)]


def test_a_monitoring_page_with_a_reference_never_asks_for_one(app, client, housing, admin):
    reference = {"source": "training", "instances": np.random.default_rng(3).normal(size=(500, 3)).tolist()}
    assert client.put("/models/housing/versions/1/reference", json=reference, headers=admin).status_code == 200

    page = client.get("/ui/models/housing/versions/1/monitoring?window=1h").get_data(as_text=True)

    assert "Not enough rows yet to judge drift: the window holds 0 answered rows" in page
    assert "/reference" not in page


def test_compare_says_when_no_version_recorded_params_or_lineage_rather_than_the_same(client, admin):
    for factor in (1.0, 2.0):
        upload_ok(client, admin, "bare", scaled_sum(factor))

    page = client.get("/ui/models/bare/compare?v=1&v=2").get_data(as_text=True)

    assert "None of these versions recorded params." in page and "None of these versions recorded lineage." in page
    assert page.count("The same in every compared version.") == 2  # the model's kind and the signature are


def test_compare_charts_list_the_versions_in_the_order_of_its_tables(client, housing, admin):
    for version in (1, 2):
        client.post(f"/models/housing/versions/{version}/evaluations", headers=admin, json={
            "dataset": {"name": "holdout.csv", "sha256": "ab" * 32, "rows": 100}, "metrics": {"r2": 0.3 + version / 10}})

    for query, order in (("v=1&v=2", ["1", "2"]), ("v=2&v=1", ["2", "1"])):
        page = client.get(f"/ui/models/housing/compare?{query}").get_data(as_text=True)
        tables = re.findall(r'<table class="metrics">.*?</thead>', page, re.DOTALL)
        charts = re.findall(r'<svg role="img".*?</svg>', page, re.DOTALL)
        assert len(tables) == 2 and len(charts) == 1  # scores on the dataset (table, chart), upload metrics (table)
        assert [re.findall(r">v(\d+)</a>", table) for table in tables] == [order, order]
        assert re.findall(r'class="label">v(\d+)<', charts[0]) == order


def test_a_count_is_rendered_without_space_around_it(app):
    """The history's approve entries read "(2 approvals)", not "( 2 approvals)" (issue 68)."""
    with app.app_context():
        counted = app.jinja_env.get_template("ui/macros.html").module.counted
    assert f"({counted(2, 'approval')})" == "(2 approvals)" and f"({counted(1, 'approval')})" == "(1 approval)"
