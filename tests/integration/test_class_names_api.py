"""PATCH names an XGBoost or LightGBM classifier's classes once, as many as it has: every worker then answers
the names (one watcher tick), also a worker that served the numbers before; names given stay; scikit-learn
models and regressors have no classes to name (422).

Worker A is the ``app`` fixture, worker B a second app on the same database and artifact root;
``server.refresh()`` plays one watcher tick.
"""
import io
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from api.settings import settings_of
from tests.helpers import assert_problem, upload_ok

xgboost = pytest.importorskip("xgboost")
X = np.random.default_rng(0).normal(size=(200, 3))
BINARY = (X[:, 0] + X[:, 1] > 0).astype(int)
ROWS = [[2.0, 2.0, 0.0], [-2.0, -2.0, 0.0]]  # class 1, then class 0
URL = "/models/tumour/versions/1"


def _booster_file(objective: str, y) -> bytes:
    params = {"objective": objective, "max_depth": 2, **({"num_class": 3} if objective.startswith("multi") else {})}
    return bytes(xgboost.train(params, xgboost.DMatrix(X, y), 5).save_raw("json"))


def _upload(client, ci, data: bytes, metadata=None, name="tumour"):
    form = {"artifact": (io.BytesIO(data), "model.json"),
            **({"metadata": json.dumps(metadata)} if metadata is not None else {})}
    response = client.post(f"/models/{name}/versions", data=form, headers=ci, content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()


def _answers(client, ref="production"):
    response = client.post(f"/models/tumour/{ref}/predict", json={"instances": ROWS, "return_proba": True})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return body["predictions"], body["classes"]


def server_of(app):
    return app.extensions["model_registry"].runtime.models


@pytest.fixture
def served(client, ci):
    """``tumour`` v1, an XGBoost binary classifier uploaded without names, promoted."""
    _upload(client, ci, _booster_file("binary:logistic", BINARY))
    assert client.post(f"{URL}/promote", json={}, headers=ci).status_code == 200


def test_naming_a_served_classifiers_classes_reaches_every_worker_that_served_the_numbers(app, build_app, client,
                                                                                      ci, served):
    b = build_app(artifact_root=settings_of(app).storage.artifact_root).test_client()
    assert _answers(client) == ([1, 0], [0, 1]) and _answers(b) == ([1, 0], [0, 1])
    assert _answers(client, "1") == ([1, 0], [0, 1])  # the pinned route holds it too

    response = client.patch(URL, json={"classes": ["benign", "malignant"]}, headers=ci)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["signature"]["classes"] == ["benign", "malignant"]
    for worker in (client, b):
        server_of(worker.application).refresh()
        assert _answers(worker) == (["malignant", "benign"], ["benign", "malignant"])
        assert _answers(worker, "1") == (["malignant", "benign"], ["benign", "malignant"])
    assert client.get("/v2/models/tumour").get_json()["outputs"][1]["parameters"]["classes"] == ["benign", "malignant"]


def test_names_once_given_stay_and_giving_them_again_changes_nothing(app, client, ci, served):
    assert client.patch(URL, json={"classes": ["benign", "malignant"]}, headers=ci).status_code == 200
    assert client.patch(URL, json={"classes": ["benign", "malignant"]}, headers=ci).status_code == 200

    assert_problem(client.patch(URL, json={"classes": ["low", "high"]}, headers=ci), 409, "given once")
    assert client.get(URL).get_json()["signature"]["classes"] == ["benign", "malignant"]


def test_names_given_at_upload_cannot_be_renamed(client, ci):
    _upload(client, ci, _booster_file("binary:logistic", BINARY), {"classes": ["no", "yes"]})
    assert_problem(client.patch(URL, json={"classes": ["benign", "malignant"]}, headers=ci), 409, "'no', 'yes'")


@pytest.mark.parametrize("classes, detail", [
    (["a", "b", "c"], "has 2 classes; give 2 names"),
    (["a", "a"], "distinct"),
    ([True, False], "strings or integers"),
    ([["a"], "b"], "strings or integers"),
    (["a"], "classes"),  # fewer than two: the schema's length
])
def test_names_that_do_not_fit_the_model_are_refused_and_nothing_changes(client, ci, served, classes, detail):
    assert_problem(client.patch(URL, json={"classes": classes, "description": "x"}, headers=ci), 422, detail)
    version = client.get(URL).get_json()
    assert version["signature"]["classes"] == [0, 1] and version["description"] == ""


def test_a_multiclass_booster_is_named_in_its_order(client, ci):
    _upload(client, ci, _booster_file("multi:softprob", np.digitize(X[:, 0], [-0.5, 0.5])))
    assert client.patch(URL, json={"classes": ["low", "mid", "high"]}, headers=ci).status_code == 200
    assert _answers(client, "1") == (["high", "low"], ["low", "mid", "high"])


def test_a_regressor_and_a_scikit_learn_classifier_have_no_classes_to_name(client, ci):
    _upload(client, ci, bytes(xgboost.train({"objective": "reg:squarederror"}, xgboost.DMatrix(X, X[:, 0]), 3)
                              .save_raw("json")))
    assert_problem(client.patch(URL, json={"classes": ["a", "b"]}, headers=ci), 422, "regressor")
    upload_ok(client, ci, "fitted", LogisticRegression().fit(X, BINARY))
    assert_problem(client.patch("/models/fitted/versions/1", json={"classes": ["a", "b"]}, headers=ci), 422,
                   "classes_")


def test_naming_classes_takes_the_ci_role(client, served, tokens):
    reader = tokens("looker", "reader")
    assert client.patch(URL, json={"classes": ["benign", "malignant"]}, headers=reader).status_code == 403


POLICY = "/models/tumour/aliases/production/policy"
NAMES = {"classes": ["benign", "malignant"]}


def _protect(client, admin, **policy):
    response = client.put(POLICY, json=policy, headers=admin)
    assert response.status_code == 200, response.get_json()


def _classes_entries(client, admin):
    history = client.get("/models/tumour/history?per_page=100", headers=admin).get_json()["items"]
    return [entry for entry in history if entry["action"] == "classes"]


def _unnamed(client, admin):
    assert client.get(URL).get_json()["signature"]["classes"] == [0, 1]
    assert _classes_entries(client, admin) == []
    assert _answers(client) == ([1, 0], [0, 1])


def test_naming_the_classes_of_a_served_version_is_recorded_in_its_alias_history(client, admin, ci, served):
    assert client.patch(URL, json=NAMES, headers=ci).status_code == 200

    [entry] = _classes_entries(client, admin)
    assert (entry["alias"], entry["actor"], entry["from_version"], entry["to_version"]) == ("production", "ci-test", 1, 1)
    assert entry["details"] == {"version": 1, "classes": ["benign", "malignant"], "previous": [0, 1]}
    assert client.get("/audit/verify", headers=admin).get_json()["ok"] is True


def test_anonymous_callers_cannot_name_the_classes_of_a_protected_version(client, admin, served):
    _protect(client, admin, movers={"roles": ["admin", "ci"]})
    assert_problem(client.patch(URL, json=NAMES), 401)
    _unnamed(client, admin)


def test_a_token_the_policy_does_not_name_cannot_change_what_the_alias_answers(client, admin, ci, served):
    _protect(client, admin, movers={"roles": ["admin"]})

    body = assert_problem(client.patch(URL, json={**NAMES, "description": "x"}, headers=ci), 409, "movers")

    assert [item["rule"] for item in body["missing"]] == ["movers"]
    _unnamed(client, admin)
    assert client.get(URL).get_json()["description"] == ""  # nothing half-written
    assert client.patch(URL, json=NAMES, headers=admin).status_code == 200  # a mover may
    assert [entry["actor"] for entry in _classes_entries(client, admin)] == ["admin"]


def test_an_alias_that_needs_approvals_refuses_new_names_saying_what_to_do(client, admin, served):
    _protect(client, admin, approvals=1)

    body = assert_problem(client.patch(URL, json=NAMES, headers=admin), 409, "approvals")

    assert "before it serves the alias" in body["missing"][0]["detail"]
    _unnamed(client, admin)


def test_a_frozen_alias_keeps_its_class_numbers(client, admin, ci, served):
    _protect(client, admin, freeze=[{"from": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}])
    assert [item["rule"] for item in assert_problem(client.patch(URL, json=NAMES, headers=ci), 409)["missing"]] \
        == ["freeze"]
    _unnamed(client, admin)


def test_a_canary_answers_the_alias_so_its_names_pass_the_policy_too(client, admin, ci, served):
    _upload(client, ci, bytes(xgboost.train({"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(X, BINARY),
                                            6).save_raw("json")))  # another file: version 2
    rollout = {"canary": {"version": 2, "percent": 50}}
    assert client.put("/models/tumour/aliases/production/rollout", json=rollout, headers=ci).status_code == 200
    _protect(client, admin, movers={"roles": ["admin"]})

    assert_problem(client.patch("/models/tumour/versions/2", json=NAMES, headers=ci), 409, "movers")
    assert client.get("/models/tumour/versions/2").get_json()["signature"]["classes"] == [0, 1]
