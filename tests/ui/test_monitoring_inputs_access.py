"""The dashboard's monitoring page shows logged inputs and categorical values only to a session whose
token has the right ``read_inputs`` (issue 40, item 7); others see each bin by its keyed hash."""
import pytest

from tests.inputs_support import EMAILS, serve_drifted

PAGE = "/ui/models/shop/versions/1/monitoring?window=1h"


@pytest.fixture
def app(build_app):
    return build_app(PREDICTION_LOG_SAMPLE=1.0, DRIFT_MIN_REFERENCE_ROWS=100)


def token_of(client, admin, role: str) -> str:
    created = client.post("/tokens", json={"name": f"ui-{role}", "role": role}, headers=admin)
    assert created.status_code == 201, created.get_json()
    return created.get_json()["token"]


@pytest.mark.parametrize("role", [None, "reader", "feedback", "ci"])
def test_without_the_right_the_page_names_bins_by_hash_and_shows_no_request(app, client, ci, admin, sign_in, role):
    serve_drifted(app, client, ci)
    if role:
        sign_in(token_of(client, admin, role))
    page = client.get(PAGE).get_data(as_text=True)
    assert 'data-column="email"' in page and "value " in page
    assert "@example.com" not in page and "HYPERLINK" not in page and "data-request=" not in page
    assert 'data-needs="read_inputs"' in page


def test_an_analyst_sees_the_values_and_the_latest_requests(app, client, ci, admin, sign_in):
    serve_drifted(app, client, ci)
    sign_in(token_of(client, admin, "analyst"))
    page = client.get(PAGE).get_data(as_text=True)
    assert all(email in page for email in EMAILS) and 'data-request="shop-hostile"' in page
    assert 'data-needs="read_inputs"' not in page
