"""A caller may name the space of its explanations (``"explain": {"space": …}``, ``?explain=<space>``, V2's
``explanation`` output parameter ``space``): each version offers the space where its attributions are exact,
and any other is refused 422 (V2: 400) naming the ones it offers. A hostile ``explain`` value is refused
saying what to send; an anonymous or out-of-scope caller is refused as predict refuses it."""
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeRegressor

from tests.helpers import assert_problem, upload_ok

RNG = np.random.default_rng(11)
X = RNG.normal(size=(200, 3))
NAMES = ["x0", "x1", "x2"]
TARGET = X @ [2.0, -1.0, 0.5]
ROWS = X[:4]
URL = "/models/m/1/predict"

# name: (model, the one space it offers)
KINDS = {
    "linear": (lambda: LinearRegression().fit(X, TARGET), "prediction"),
    "logistic": (lambda: LogisticRegression().fit(X, TARGET > 0), "margin"),
    "tree-regressor": (lambda: DecisionTreeRegressor(max_depth=4).fit(X, TARGET), "prediction"),
    "forest-classifier": (lambda: RandomForestClassifier(5, max_depth=4, random_state=0).fit(X, TARGET > 0),
                          "probability"),
    "boosted-classifier": (lambda: HistGradientBoostingClassifier(max_iter=5).fit(X, TARGET > 0), "margin"),
}
SPACES = ("prediction", "probability", "margin")


@pytest.fixture(scope="module")
def fitted():
    return {name: make() for name, (make, _) in KINDS.items()}


def _upload(client, ci, model):
    upload_ok(client, ci, "m", model, {"feature_names": NAMES})


def _body(**extra) -> dict:
    return {"instances": ROWS.tolist(), **extra}


@pytest.mark.parametrize("name", KINDS)
def test_the_space_a_version_offers_may_be_named_in_the_body_or_the_query_and_gives_the_same_answer(
        client, ci, fitted, name):
    _upload(client, ci, fitted[name])
    space = KINDS[name][1]
    default = client.post(URL, json=_body(explain=True))
    named = client.post(URL, json=_body(explain={"space": space}))
    queried = client.post(f"{URL}?explain={space}", json=_body())
    both = client.post(f"{URL}?explain=true", json=_body(explain={"space": space}))

    assert default.status_code == 200, default.get_json()
    assert default.get_json()["explanation_space"] == space
    assert named.get_json() == default.get_json() == queried.get_json() == both.get_json()


@pytest.mark.parametrize("name", KINDS)
def test_a_space_the_version_does_not_offer_is_422_naming_the_one_it_does(client, ci, fitted, name):
    _upload(client, ci, fitted[name])
    offered = KINDS[name][1]
    for space in SPACES:
        if space == offered:
            continue
        for response in (client.post(URL, json=_body(explain={"space": space})),
                         client.post(f"{URL}?explain={space}", json=_body())):
            problem = assert_problem(response, 422, f"in {offered} space only, not {space}", "explain: true")
            assert problem["errors"] == {"spaces": [offered]}
    # asking without explain is unchanged
    assert client.post(URL, json=_body()).status_code == 200


def test_v2_names_the_space_as_a_parameter_of_the_explanation_output(client, ci, fitted):
    _upload(client, ci, fitted["logistic"])

    def infer(parameters):
        output = {"name": "explanation"} | ({"parameters": parameters} if parameters is not None else {})
        return client.post("/v2/models/m/versions/1/infer", json={
            "inputs": [{"name": "input-0", "shape": list(ROWS.shape), "datatype": "FP64", "data": ROWS.tolist()}],
            "outputs": [output]})

    plain, named = infer(None), infer({"space": "margin", "binary_data": False})
    assert plain.status_code == named.status_code == 200, named.get_json()
    assert plain.get_json()["outputs"] == named.get_json()["outputs"]
    assert named.get_json()["outputs"][0]["parameters"]["explanation_space"] == "margin"
    refused = infer({"space": "probability"})
    assert refused.status_code == 400 and "in margin space only, not probability" in refused.get_json()["error"]
    for parameters, fragment in (({"space": "odds"}, "explanation.space must be one of prediction, probability, margin"),
                                 ({"spaces": "margin"}, 'explanation takes only "space"'),
                                 ({"space": "x" * 100_000}, "explanation.space must be one of")):
        response = infer(parameters)
        assert response.status_code == 400 and fragment in response.get_json()["error"], response.get_json()
        assert len(response.get_json()["error"]) < 300


@pytest.mark.parametrize("explain, fragments", [
    ({"space": "margin", "why": 1}, ['explain takes only "space"', "'why'"]),
    ({"space": "margin", "k" * 100_000: 1}, ['explain takes only "space"']),
    (7, ['explain must be true, false or {"space": "<space>"}', "got 7"]),
    (0.5, ["explain must be true, false or", "got 0.5"]),
    ("margin", ['explain must be true, false or {"space": "<space>"}', "got 'margin'"]),
    ("x" * 100_000, ["explain must be true, false or", "..."]),
    ([True], ["explain must be true, false or", "got a list"]),
    ({"space": None, "x": None}, ['explain takes only "space"']),
    ({"space": 3}, ["explain.space must be one of prediction, probability, margin", "got 3"]),
    ({"space": "MARGIN"}, ["explain.space must be one of", "got 'MARGIN'"]),
    ({"space": "y" * 100_000}, ["explain.space must be one of", "..."]),
    ({"space": ["margin"]}, ["explain.space must be one of", "got a list"]),
])
def test_a_hostile_explain_value_is_422_saying_what_to_send_in_a_short_detail(client, ci, fitted, explain, fragments):
    _upload(client, ci, fitted["logistic"])
    problem = assert_problem(client.post(URL, json=_body(explain=explain)), 422, *fragments)
    assert len(problem["detail"]) < 300


@pytest.mark.parametrize("query, fragment", [
    ("?explain=maybe", "explain must be true, false or a space (prediction, probability, margin), not 'maybe'"),
    ("?explain=" + "z" * 5000, "explain must be true, false or a space"),
])
def test_a_hostile_explain_query_is_422(client, ci, fitted, query, fragment):
    _upload(client, ci, fitted["logistic"])
    problem = assert_problem(client.post(URL + query, json=_body()), 422, fragment)
    assert len(problem["detail"]) < 300


def test_the_body_and_the_query_may_not_name_different_spaces(client, ci, fitted):
    _upload(client, ci, fitted["logistic"])
    assert_problem(client.post(f"{URL}?explain=prediction", json=_body(explain={"space": "margin"})), 422,
                   "explain asks for margin in the body and prediction in the query")
    assert client.post(f"{URL}?explain=false", json=_body(explain={"space": "margin"})).status_code == 200


def test_a_csv_body_names_its_space_in_the_query(client, ci, fitted):
    _upload(client, ci, fitted["forest-classifier"])
    csv = "x0,x1,x2\n" + "\n".join(",".join(map(repr, row)) for row in ROWS.tolist()) + "\n"
    ok = client.post(f"{URL}?explain=probability", data=csv, content_type="text/csv")
    assert ok.status_code == 200 and ok.get_json()["explanation_space"] == "probability"
    assert_problem(client.post(f"{URL}?explain=margin", data=csv, content_type="text/csv"), 422,
                   "in probability space only, not margin")


def test_an_anonymous_caller_is_refused_before_any_space_is_read(build_app, ci, fitted):
    client = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()
    _upload(client, ci, fitted["logistic"])
    for response in (client.post(URL, json=_body(explain={"space": "margin"})),
                     client.post(URL, json=_body(explain={"space": "probability"})),
                     client.post(URL, json=_body(explain={"bogus": 1}))):
        assert_problem(response, 401)
        assert "explanations" not in response.get_data(as_text=True)


def test_a_token_out_of_the_models_scope_is_refused_as_predict_is(build_app, ci, fitted, tokens):
    client = build_app(REQUIRE_AUTH_FOR_READS=True).test_client()
    _upload(client, ci, fitted["logistic"])
    outsider = tokens("outsider", "reader", [{"models": ["other-*"], "rights": ["read", "predict"]}])
    insider = tokens("insider", "reader", [{"models": ["m"], "rights": ["predict"]}])
    plain = client.post(URL, json=_body(), headers=outsider)
    explained = client.post(URL, json=_body(explain={"space": "margin"}), headers=outsider)
    assert plain.status_code == explained.status_code and plain.status_code in (403, 404)
    assert explained.get_json()["detail"] == plain.get_json()["detail"]
    assert "explanations" not in explained.get_data(as_text=True)
    allowed = client.post(URL, json=_body(explain={"space": "margin"}), headers=insider)
    assert allowed.status_code == 200 and len(allowed.get_json()["explanations"]) == len(ROWS)
