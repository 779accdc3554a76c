"""A label reaches only the answer it was meant for; request ids are unguessable and of a safe
character set; labels are finite numbers, and a refused one is not echoed whole (issue 40: 6, 8, 9)."""
import random

import pytest
from sklearn.linear_model import LogisticRegression

from tests.helpers import PROBE_ROW, classification_data, scaled_sum, upload_ok

HEADER = "X-Request-ID"


@pytest.fixture
def app(build_app, request):
    return build_app(PREDICTION_LOG_SAMPLE=getattr(request, "param", 1.0))


@pytest.fixture
def served(client, ci):
    upload_ok(client, ci, "m", scaled_sum(1))
    assert client.post("/models/m/versions/1/promote", json={}, headers=ci).status_code == 200
    X, y = classification_data(n_features=3)
    upload_ok(client, ci, "c", LogisticRegression().fit(X, y))
    assert client.post("/models/c/versions/1/promote", json={}, headers=ci).status_code == 200


def predict(client, request_id=None, name="m", rows=(PROBE_ROW,)):
    headers = {HEADER: request_id} if request_id is not None else {}
    return client.post(f"/models/{name}/production/predict", json={"instances": list(rows)}, headers=headers)


def written(app) -> None:
    assert app.extensions["model_registry"].prediction_log.flush(), "the prediction log did not drain"


def feedback(client, headers, items, name="m", **kwargs):
    if "data" in kwargs:
        return client.post(f"/models/{name}/feedback", headers={**headers, "Content-Type": "application/json"}, **kwargs)
    return client.post(f"/models/{name}/feedback", headers=headers, json={"items": items})


def labels(client, headers, name="m") -> list:
    items = client.get(f"/models/{name}/predictions", headers=headers).get_json()["items"]
    return sorted((item["request_id"], item["label"]) for item in items)


@pytest.mark.parametrize("order", ["stranger after", "stranger before"])
def test_a_stranger_resending_an_id_never_receives_its_label(app, client, served, ci, order, analyst):
    callers = ["victim", "stranger"] if order == "stranger after" else ["stranger", "victim"]
    for _ in callers:  # anonymous predictions under the same caller-chosen id
        assert predict(client, "order-17").status_code == 200
    written(app)

    response = feedback(client, ci, [{"request_id": "order-17", "label": 3.5}])

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["applied"] == 0 and [(e["request_id"], e["status"]) for e in body["errors"]] == [("order-17", 409)]
    assert "answers were logged under this request id" in body["errors"][0]["detail"]
    assert labels(client, analyst) == [("order-17", None), ("order-17", None)]


def test_a_retry_after_an_error_under_the_same_id_is_labelled(app, client, served, ci):
    assert predict(client, "retry-1", rows=[["x", 1, 2]]).status_code == 422
    assert predict(client, "retry-1").status_code == 200
    written(app)
    response = feedback(client, ci, [{"request_id": "retry-1", "label": 2.0}])
    assert response.get_json()["applied"] == 1, response.get_json()


def test_server_ids_do_not_follow_pythons_random_generator(client, served):
    random.seed(40)
    first = predict(client).headers[HEADER]
    random.seed(40)
    second = predict(client).headers[HEADER]
    assert first != second


@pytest.mark.parametrize("given", ["=HYPERLINK(\"x\")", "<script>alert(1)</script>", "a b", "x" * 129, "a,b",
                                   "'quoted'", "+1", "@sum", "-1", "a\\tb"])
def test_an_id_outside_the_safe_set_is_replaced_by_a_server_id(client, served, given):
    response = predict(client, given)
    assert response.status_code == 200
    assert response.headers[HEADER] != given and len(response.headers[HEADER]) == 36


@pytest.mark.parametrize("given", ["order-17", "trace.7f:ok_1", "A" * 128, "7f-ok"])
def test_a_safe_id_comes_back_as_sent(client, served, given):
    assert predict(client, given).headers[HEADER] == given


def test_feedback_refuses_an_id_no_request_can_carry(client, served, ci):
    response = feedback(client, ci, [{"request_id": "=cmd|' /C calc'!A0", "label": 1.0}])
    assert response.status_code == 422
    assert "A-Z" in response.get_data(as_text=True)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize("name", ["m", "c"])
def test_a_non_finite_label_is_refused_per_item_and_the_good_ones_apply(app, client, served, ci, token, name, analyst):
    assert predict(client, "good", name=name).status_code == 200
    assert predict(client, "bad", name=name).status_code == 200
    written(app)
    data = '{"items": [{"request_id": "bad", "label": %s}, {"request_id": "good", "label": 1}]}' % token

    response = feedback(client, ci, None, name=name, data=data)

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["applied"] == 1 and [(e["request_id"], e["status"]) for e in body["errors"]] == [("bad", 422)]
    assert "finite" in body["errors"][0]["detail"]
    assert labels(client, analyst, name) == [("bad", None), ("good", 1)]


def test_a_huge_refused_label_is_not_echoed_whole(app, client, served, ci):
    assert predict(client, "k", name="c").status_code == 200
    written(app)
    response = feedback(client, ci, [{"request_id": "k", "label": "y" * 1_000_000}], name="c")
    assert response.status_code == 200
    assert len(response.get_data()) < 2_000 and response.get_json()["errors"][0]["status"] == 422


@pytest.mark.parametrize("app", [0.5], indirect=True)
def test_answers_under_one_id_are_all_logged_or_none_is(app, served, client, ci, analyst):
    """A stranger's answer is never the only one logged under a victim's id (the victim's not drawn,
    the stranger's drawn): the share draws by the id, so the label has no answer to reach."""
    for index in range(40):
        assert predict(client, f"pair-{index}").status_code == 200  # the victim
        assert predict(client, f"pair-{index}").status_code == 200  # a stranger re-sending its id
    written(app)
    counts = {}
    items = client.get("/models/m/predictions?per_page=200", headers=analyst).get_json()["items"]
    for item in items:
        counts[item["request_id"]] = counts.get(item["request_id"], 0) + 1
    assert set(counts.values()) == {2} and 0 < len(counts) < 40
