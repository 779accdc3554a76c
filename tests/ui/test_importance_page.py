"""The version's monitoring page shows its global importance and, during a rollout, the canary's beside the
primary's with their attribution drift: only to a session whose token has the right ``read_inputs``."""
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from tests.helpers import upload_ok

PAGE = "/ui/models/m/versions/{}/monitoring?window=1h"
RNG = np.random.default_rng(4)
X = RNG.normal(size=(200, 3))
NAMES = ["x0", "x1", "x2"]


def uses(column: int) -> LinearRegression:
    return LinearRegression().fit(X, 3 * X[:, column])


@pytest.fixture
def app(build_app):
    return build_app(PREDICTION_LOG_SAMPLE=1.0, ATTRIBUTION_MIN_ROWS=10)


@pytest.fixture
def explained(app, client, ci):
    """Version 1 (moved by x0) on production, a canary moved by x2, both explained, 80 answers between them."""
    for column in (0, 2):
        upload_ok(client, ci, "m", uses(column), {"feature_names": NAMES})
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    assert client.patch("/models/m", json={"prediction_log": {"explain": 1.0}}, headers=ci).status_code == 200
    rollout = {"canary": {"version": 2, "percent": 50}}
    assert client.put("/models/m/aliases/production/rollout", json=rollout, headers=ci).status_code == 200
    for i, row in enumerate(RNG.normal(size=(80, 3)).tolist()):
        assert client.post("/models/m/production/predict", json={"instances": [row]}).status_code == 200
    assert app.extensions["model_registry"].prediction_log.flush()


def token_of(client, admin, role: str) -> str:
    created = client.post("/tokens", json={"name": f"ui-{role}", "role": role}, headers=admin)
    assert created.status_code == 201, created.get_json()
    return created.get_json()["token"]


def section(page: str) -> str:
    start = page.index('data-section="importance"')
    return page[start:page.index("</section>", start)]


@pytest.mark.parametrize("role", [None, "reader", "feedback", "ci"])
def test_without_the_right_the_page_shows_no_attribution(client, explained, admin, sign_in, role):
    if role:
        sign_in(token_of(client, admin, role))
    shown = section(client.get(PAGE.format(1)).get_data(as_text=True))
    assert 'data-needs="read_inputs"' in shown and "data-column=" not in shown and "data-rollout=" not in shown


def test_an_analyst_sees_the_importance_and_the_canary_beside_the_primary(client, explained, admin, sign_in):
    sign_in(token_of(client, admin, "analyst"))
    for version in (1, 2):
        shown = section(client.get(PAGE.format(version)).get_data(as_text=True))
        assert 'data-rollout="production"' in shown and "canary v2 beside primary v1" in shown
        assert 'data-figure="attribution-distance">1.000' in shown and "past 0.2" in shown
    first = section(client.get(PAGE.format(1)).get_data(as_text=True))
    assert first.index('data-column="x0"') < first.index('data-column="x1"')  # the most important first


def test_a_version_without_explained_answers_says_how_to_have_them(client, ci, admin, sign_in):
    upload_ok(client, ci, "m", uses(0), {"feature_names": NAMES})
    sign_in(token_of(client, admin, "analyst"))
    shown = section(client.get(PAGE.format(1)).get_data(as_text=True))
    assert "data-importance-empty" in shown and "explains 0 % of its logged answers" in shown


@pytest.mark.parametrize("labels, summed", [(2, False), (3, True)], ids=["binary", "multiclass"])
def test_a_classifiers_margin_is_said_summed_over_the_classes_only_where_it_has_one_per_class(
        app, client, ci, admin, sign_in, labels, summed):
    """A binary margin is one number a row (the second class's log-odds): nothing is summed over classes."""
    from sklearn.linear_model import LogisticRegression

    upload_ok(client, ci, "c", LogisticRegression().fit(X, np.digitize(X[:, 0], [-0.5, 0.5][:labels - 1])),
              {"feature_names": NAMES})
    assert client.patch("/models/c", json={"prediction_log": {"explain": 1.0}}, headers=ci).status_code == 200
    for row in RNG.normal(size=(20, 3)).tolist():
        assert client.post("/models/c/1/predict", json={"instances": [row]}).status_code == 200
    assert app.extensions["model_registry"].prediction_log.flush()
    sign_in(token_of(client, admin, "analyst"))

    shown = " ".join(section(client.get("/ui/models/c/versions/1/monitoring?window=1h").get_data(as_text=True)).split())

    assert "space: margin" in shown
    assert ("summed over the classes" in shown) is summed
