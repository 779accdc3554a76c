"""Logged inputs leave the server only to a token with the right ``read_inputs`` (issue 40, item 7):
the roles ``analyst`` and ``admin``. Everyone else (anonymous, reader, feedback, ci) sees a
categorical drift bin and a reference's values by their keyed hash, the same name in every view, and
``/predictions`` (JSON and CSV) answers 401 or 403 naming the right. The CSV neutralises formulas
(issue 40, item 8)."""
import csv
import io
import json

import numpy as np
import pytest

from registry.monitoring.masking import value_names
from tests.helpers import assert_problem
from tests.inputs_support import EMAILS, HOSTILE, records, serve_drifted

MONITORING = "/models/shop/versions/1/monitoring?window=1h"
REFERENCE = "/models/shop/versions/1/reference"


@pytest.fixture
def app(build_app):
    return build_app(PREDICTION_LOG_SAMPLE=1.0, DRIFT_MIN_REFERENCE_ROWS=100)


@pytest.fixture
def tokens(client, admin):
    """``tokens[role]``: the headers of a fresh token of ``role`` (none for ``anonymous``), made when asked."""

    class Tokens(dict):
        def __missing__(self, role):
            if role == "anonymous":
                return {}
            created = client.post("/tokens", json={"name": f"{role}-t", "role": role}, headers=admin)
            assert created.status_code == 201, created.get_json()
            self[role] = {"Authorization": f"Bearer {created.get_json()['token']}"}
            return self[role]

    return Tokens(admin=admin)


@pytest.fixture
def served(app, client, ci):
    serve_drifted(app, client, ci)


def email_bins(client, headers) -> list[str]:
    response = client.get(MONITORING, headers=headers)
    assert response.status_code == 200, response.get_json()
    judged = response.get_json()["drift"]["features"]["email"]
    assert judged["drifted"]
    return [b["bin"] for b in judged["bins"]]


@pytest.mark.parametrize("role", ["anonymous", "reader", "feedback", "ci"])
def test_a_caller_without_the_right_reads_no_address_in_drift_bins_nor_the_reference(client, served, tokens, role):
    headers = tokens[role]
    for path in (MONITORING, REFERENCE):
        text = client.get(path, headers=headers).get_data(as_text=True)
        assert "@example.com" not in text and "HYPERLINK" not in text, path
    bins = email_bins(client, headers)
    hidden = [name for name in bins if name.startswith("value ")]
    assert len(hidden) == 3 and all(len(name) == len("value ") + 12 for name in hidden)
    # The same value has the same name in both views, so a reader can still tell which bin moved.
    values = client.get(REFERENCE, headers=headers).get_json()["features"]["email"]["values"]
    assert set(hidden) == set(values)
    assert client.get(REFERENCE, headers=headers).get_json()["features"]["amount"]["kind"] == "numeric"


@pytest.mark.parametrize("role", ["analyst", "admin"])
def test_a_token_with_the_right_reads_the_values(client, served, tokens, role):
    assert set(EMAILS) <= set(email_bins(client, tokens[role]))
    assert set(client.get(REFERENCE, headers=tokens[role]).get_json()["features"]["email"]["values"]) == set(EMAILS)


def test_the_hidden_names_are_keyed_with_the_servers_secret(app, client, served):
    named = value_names(lambda: app.config["SECRET_KEY"].encode())
    assert set(email_bins(client, {})) >= {named(email) for email in EMAILS}
    guessed = value_names(lambda: b"")  # without the key, a guessed address names no bin
    assert not {guessed(email) for email in EMAILS} & set(email_bins(client, {}))


def test_a_bad_token_sent_to_an_open_read_is_refused_not_ignored(client, served):
    assert_problem(client.get(MONITORING, headers={"Authorization": "Bearer nope"}), 401)


def test_ci_sending_a_reference_sees_it_back_by_name_only(client, served, ci):
    rows = records(np.random.default_rng(9), 120, EMAILS)
    sent = client.put(REFERENCE, headers=ci, json={"source": "evaluation", "dataframe_records": rows})
    assert sent.status_code == 200 and "@example.com" not in sent.get_data(as_text=True)


@pytest.mark.parametrize("role", ["reader", "feedback", "ci"])
@pytest.mark.parametrize("accept", ["application/json", "text/csv"])
def test_the_log_and_its_csv_are_403_naming_the_missing_right(client, served, tokens, role, accept):
    refused = client.get("/models/shop/predictions", headers={**tokens[role], "Accept": accept})
    assert_problem(refused, 403, "'read_inputs'", "'analyst'")


@pytest.mark.parametrize("accept", ["application/json", "text/csv"])
def test_the_log_needs_a_token_at_all(client, served, accept):
    assert_problem(client.get("/models/shop/predictions", headers={"Accept": accept}), 401)


@pytest.mark.parametrize("role", ["analyst", "admin"])
def test_the_right_reads_the_log(client, served, tokens, role):
    response = client.get("/models/shop/predictions?limit=1000", headers=tokens[role])
    assert response.status_code == 200 and EMAILS[0] in response.get_data(as_text=True)


def test_the_csv_opens_as_data_not_formulas(client, served, admin, analyst):
    labelled = client.post("/models/shop/feedback", headers=admin, json={"items": [{"request_id": "shop-hostile", "label": -1.5}]})
    assert labelled.get_json()["applied"] == 1
    response = client.get("/models/shop/predictions?limit=1000", headers={**analyst, "Accept": "text/csv"})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert any(json.dumps(HOSTILE) in cell for row in rows for cell in row)  # the hostile value is there, inside JSON text
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
            assert not cell.startswith("-") or float(cell) < 0, cell  # only a number of ours starts with '-'
    header, lines = rows[0], {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert lines["shop-hostile"]["label"] == "-1.5" and "\n-1.5," not in response.get_data(as_text=True)
    assert ',-1.5,' in response.get_data(as_text=True)  # written as a number, unquoted


def test_the_drift_alert_a_webhook_receives_names_no_value(app, client, served):
    swept = app.test_cli_runner().invoke(args=["monitoring", "sweep"])
    assert swept.exit_code == 0, swept.output
    (alert,) = json.loads(swept.stdout)["alerts"]  # a log line may go to stderr
    assert "email" in alert["columns"] and "@example.com" not in json.dumps(alert)
    assert set(email_bins(client, {})) == {b["bin"] for b in alert["drift"]["features"]["email"]["bins"]}
