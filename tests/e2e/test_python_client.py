"""The Python client against a real gunicorn registry: every method a script needs, round trip."""
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from registry_client import Evaluation, Move, RegistryClient, RegistryError, TokenRejected, Version
from tests.databases import BACKEND

pytestmark = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason=("the client's methods are what it tests; the routes behind them run on both backends in "
            "tests/integration: the SQLite pass runs it"),
)

ROWS = np.random.default_rng(0).normal(size=(40, 3))
FRAME = pd.DataFrame(ROWS, columns=["a", "b", "c"])
TARGET = FRAME["a"] * 2 - FRAME["b"]
DATASET = {"name": "holdout", "sha256": "ab" * 32, "rows": 40}


@pytest.fixture(scope="module")
def admin(live_registry) -> RegistryClient:
    """A client with the admin token."""
    return RegistryClient(live_registry.url, live_registry.admin_token)


@pytest.fixture(scope="module")
def housing(admin) -> tuple[Version, Version]:
    """Two versions of ``housing``: a fitted estimator object and the bytes of another, v1 promoted."""
    first = admin.upload("housing", LinearRegression().fit(FRAME, TARGET), description="first",
                         metrics={"r2": 0.9}, tags={"team": "pricing"}, input_example=ROWS[:2].tolist())
    buffer = io.BytesIO()
    joblib.dump(LinearRegression(fit_intercept=False).fit(FRAME, TARGET), buffer)
    second = admin.upload("housing", buffer.getvalue(), metrics={"r2": 0.8}, filename="second.joblib")
    admin.promote("housing", first.version, reason="first champion")
    return first, second


def test_upload_returns_the_version_with_its_signature_and_metadata(housing):
    first, second = housing
    assert (first.version, second.version) == (1, 2)
    assert first.kind == "linear" and first.task == "regression" and first.signature.names == ["a", "b", "c"]
    assert first.metrics == {"r2": 0.9} and first.tags == {"team": "pricing"} and first.description == "first"
    assert len(first.sha256) == 64 and first.created_by == "admin"


def test_the_same_bytes_again_are_the_same_version(admin, housing):
    again = admin.upload("housing", LinearRegression().fit(FRAME, TARGET))
    assert again.version == housing[0].version


def test_versions_models_and_lookups(admin, housing):
    assert [v.version for v in admin.versions("housing")] == [2, 1]
    assert [v.version for v in admin.versions("housing", sort="-metrics.r2")] == [1, 2]
    assert "housing" in [m.name for m in admin.models()]
    model = admin.model("housing")
    assert model.aliases == {"production": 1} and model.version_count == 2
    assert admin.version("housing", "production").version == 1
    assert admin.find_version("housing", "staging") is None
    with pytest.raises(RegistryError) as caught:
        admin.version("nope", 1)
    assert caught.value.status == 404 and caught.value.problem["status"] == 404


def test_update_version_and_model(admin, housing):
    changed = admin.update_version("housing", 2, description="no intercept", tags={"try": "b"})
    assert (changed.description, changed.tags) == ("no intercept", {"try": "b"})
    model = admin.update_model("housing", description="prices", tags={"owner": "ana"})
    assert (model.description, model.tags) == ("prices", {"owner": "ana"})


def test_download_answers_the_uploaded_bytes(admin, housing):
    assert hashlib.sha256(admin.download("housing", 1)).hexdigest() == housing[0].sha256


def test_predict_by_alias_and_version_with_every_row_shape(admin, housing, live_registry):
    reader = RegistryClient(live_registry.url, token="")
    expected = LinearRegression().fit(FRAME, TARGET).predict(FRAME.head(2))
    by_frame = reader.predict("housing", FRAME.head(2), request_id="client-test-1")
    assert by_frame.version == 1 and by_frame.request_id == "client-test-1" and by_frame.route == "primary"
    assert by_frame.predictions == pytest.approx(expected.tolist())
    by_lists = reader.predict("housing", ROWS[:2], ref=1)
    by_dicts = reader.predict("housing", FRAME.head(2).to_dict(orient="records"), ref="production")
    assert by_lists.predictions == by_dicts.predictions == by_frame.predictions


def test_infer_speaks_the_open_inference_protocol(admin, housing):
    answer = admin.infer("housing", ROWS[:3], version=1)
    assert answer.model_version == "1"
    assert answer.outputs["predict"] == pytest.approx(LinearRegression().fit(FRAME, TARGET).predict(FRAME.head(3)).tolist())
    by_column = admin.infer("housing", FRAME.head(3))
    assert by_column.outputs["predict"] == pytest.approx(answer.outputs["predict"])


def test_promote_rollback_aliases_and_history(admin, housing):
    move = admin.promote("housing", 2, alias="staging", reason="try it")
    assert move == Move(raw={}, model="housing", alias="staging", version=2, previous_version=None, event_id=move.event_id)
    admin.promote("housing", 2, reason="better")
    back = admin.rollback("housing", reason="worse after all")
    assert (back.version, back.previous_version) == (1, 2)
    assert admin.aliases("housing") == {"production": 1, "staging": 2}
    events = list(admin.history("housing", alias="production"))
    assert [(e.action, e.to_version) for e in events[:2]] == [("rollback", 1), ("promote", 2)]
    admin.delete_alias("housing", "staging")
    assert admin.aliases("housing") == {"production": 1}


def test_a_rollout_started_watched_paused_and_aborted(admin, housing):
    started = admin.start_rollout("housing", canary={"version": 2, "percent": 10}, reason="canary")
    assert started.canary["version"] == 2 and started.primary["version"] == 1 and started.plan is None
    assert admin.rollout("housing").canary["percent"] == 10
    admin.abort_rollout("housing", reason="enough")
    assert admin.rollout("housing") is None
    planned = admin.start_rollout("housing", canary={"version": 2}, plan={}, reason="on autopilot")
    assert planned.plan["state"] == "running"
    assert admin.pause_rollout("housing", reason="hold").plan["state"] == "paused"
    assert admin.resume_rollout("housing").plan["state"] == "running"
    admin.abort_rollout("housing")


def test_evaluations_recorded_and_compared_on_a_dataset(admin, housing):
    recorded = admin.record_evaluation("housing", 1, DATASET, {"r2": 0.7}, note="nightly")
    admin.record_evaluation("housing", 2, DATASET, {"r2": 0.75})
    assert isinstance(recorded, Evaluation) and recorded.dataset == DATASET and recorded.note == "nightly"
    assert [e.metrics for e in admin.evaluations("housing", 1)] == [{"r2": 0.7}]
    ranked = list(admin.dataset_evaluations("housing", DATASET["sha256"], sort="-metrics.r2"))
    assert [e.version for e in ranked] == [2, 1]


def test_tokens_created_listed_used_and_revoked(admin, housing, live_registry):
    created = admin.create_token("client-ci", "ci")
    assert created.token and created.role == "ci"
    assert "client-ci" in [t.name for t in admin.tokens()]
    ci = RegistryClient(live_registry.url, created.token)
    ci.update_version("housing", 2, description="said by ci")
    with pytest.raises(TokenRejected) as caught:
        ci.archive("housing", 2)
    assert caught.value.status == 403
    admin.revoke_token("client-ci")
    with pytest.raises(TokenRejected) as caught:
        ci.update_version("housing", 2, description="after revoke")
    assert caught.value.status == 401


def test_a_refused_request_carries_the_registrys_problem(admin, housing):
    with pytest.raises(RegistryError) as caught:
        admin.upload("housing", LogisticRegression())
    assert caught.value.status == 422 and "not fitted" in caught.value.detail
    assert caught.value.problem["title"] and caught.value.problem["status"] == 422


def test_explanations_come_with_the_answer_and_add_up_to_it(admin, housing):
    answer = admin.predict("housing", ROWS[:3].tolist(), "production", explain=True)
    assert answer.explanation_space == "prediction" and len(answer.explanations) == 3
    for prediction, explained in zip(answer.predictions, answer.explanations):
        assert set(explained["values"]) == {"a", "b", "c"}
        assert explained["base_value"] + sum(explained["values"].values()) == pytest.approx(prediction, abs=1e-9)
    assert admin.predict("housing", ROWS[:3].tolist()).explanations is None
    named = admin.predict("housing", ROWS[:3].tolist(), "production", explain="prediction")
    assert named.explanations == answer.explanations and named.explanation_baseline == answer.explanation_baseline
    with pytest.raises(RegistryError) as caught:
        admin.predict("housing", ROWS[:3].tolist(), "production", explain="probability")
    assert caught.value.status == 422 and caught.value.problem["errors"] == {"spaces": ["prediction"]}


def test_a_protected_alias_moves_by_an_approved_request_and_by_break_glass(admin, live_registry):
    people = {name: RegistryClient(live_registry.url, admin.create_token(name, "ci").token)
              for name in ("guard-uploader", "guard-requester", "guard-approver")}
    for fitted in (LinearRegression(), LinearRegression(fit_intercept=False)):
        people["guard-uploader"].upload("guarded", fitted.fit(FRAME, TARGET), input_example=ROWS[:2].tolist())
    admin.promote("guarded", 1)
    assert admin.policy("guarded", "production") is None

    set_ = admin.set_policy("guarded", "production", {"approvals": 1}, reason="four eyes")
    assert set_.policy["approvals"] == 1 and admin.policy("guarded", "production").policy == set_.policy
    with pytest.raises(RegistryError) as refused:
        people["guard-requester"].promote("guarded", 2)
    assert refused.value.status == 409 and [m["rule"] for m in refused.value.problem["missing"]] == ["approvals"]

    opened = people["guard-requester"].request_approval("guarded", "production", 2, reason="better")
    assert (opened.state, opened.version, opened.approvals_needed) == ("open", 2, 1)
    for own in ("guard-requester", "guard-uploader"):  # never the requester nor the uploader
        with pytest.raises(RegistryError) as caught:
            people[own].approve("guarded", "production", opened.id)
        assert caught.value.status == 403
    done = people["guard-approver"].approve("guarded", "production", opened.id, reason="looks right")
    assert done.state == "done" and admin.aliases("guarded") == {"production": 2}
    assert [r.id for r in admin.approval_requests("guarded", "production", state="done")] == [opened.id]
    assert admin.approval_request("guarded", "production", opened.id).approvals[0]["approver"] == "guard-approver"

    back = admin.break_glass("guarded", "production", 1, reason="incident 42")
    assert (back.version, back.previous_version) == (1, 2)
    assert next(admin.history("guarded", alias="production")).action == "break_glass"
    admin.delete_policy("guarded", "production", reason="lifted")
    assert admin.policy("guarded", "production") is None
    with pytest.raises(RegistryError) as unknown:
        admin.policy("no-such-model", "production")
    assert unknown.value.status == 404


def _xgboost_classifier(depth: int):
    """An XGBoost classifier of scikit-learn's breast-cancer data (labels 0 malignant, 1 benign), and its rows."""
    xgboost = pytest.importorskip("xgboost")
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return xgboost.XGBClassifier(n_estimators=5, max_depth=depth).fit(data.data, data.target), data


def test_an_xgboost_classifier_uploaded_with_its_classes_answers_their_names(admin, tmp_path):
    fitted, data = _xgboost_classifier(depth=2)
    fitted.save_model(tmp_path / "cancer.json")
    uploaded = admin.upload("cancer", tmp_path / "cancer.json", classes=data.target_names)
    assert uploaded.framework == "xgboost" and uploaded.signature.classes == ["malignant", "benign"]

    answer = admin.predict("cancer", data.data[:20], ref=uploaded.version, proba=True)

    assert answer.predictions == data.target_names[fitted.predict(data.data[:20])].tolist()
    assert answer.classes == ["malignant", "benign"]
    np.testing.assert_allclose(answer.probabilities, fitted.predict_proba(data.data[:20]), atol=1e-6)


def test_an_xgboost_classifier_uploaded_without_classes_is_named_once_afterwards(admin, tmp_path):
    fitted, data = _xgboost_classifier(depth=3)
    fitted.save_model(tmp_path / "unnamed.json")
    uploaded = admin.upload("unnamed", tmp_path / "unnamed.json")
    assert uploaded.signature.classes == [0, 1]

    named = admin.update_version("unnamed", uploaded.version, classes=["malignant", "benign"])

    assert named.signature.classes == ["malignant", "benign"]
    answer = admin.predict("unnamed", data.data[:20], ref=uploaded.version)
    assert answer.predictions == data.target_names[fitted.predict(data.data[:20])].tolist()
    with pytest.raises(RegistryError) as again:
        admin.update_version("unnamed", uploaded.version, classes=["bad", "good"])
    assert again.value.status == 409 and "given once" in again.value.problem["detail"]


REPOSITORY = Path(__file__).resolve().parents[2]
ALONE = """
import json, sys
from registry_client import RegistryClient, RegistryError

registry = RegistryClient(sys.argv[1], sys.argv[2])
version = registry.upload("alone", bytes.fromhex(sys.argv[3]), filename="alone.joblib")
registry.promote("alone", version.version)
answer = registry.predict("alone", [[1.0, 2.0, 3.0]])
try:
    registry.upload("alone", object())
except TypeError as exc:
    refused = str(exc)
heavy = sorted(name for name in ("pandas", "numpy", "joblib", "sklearn") if name in sys.modules)
print(json.dumps({"predictions": answer.predictions, "refused": refused, "heavy": heavy}))
"""


@pytest.fixture(scope="module")
def lone_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with nothing but ``pip install ./client`` (built from the local package index)."""
    root = tmp_path_factory.mktemp("client-alone")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    pip = [str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, str(REPOSITORY / "client")], capture_output=True, text=True, cwd=root)
    assert installed.returncode == 0, installed.stderr
    return root


def test_the_client_installs_alone_with_requests_and_serves_a_script(live_registry, lone_venv):
    listed = subprocess.run([str(lone_venv / "venv" / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True)
    names = {package["name"].lower() for package in json.loads(listed.stdout)} - {"pip", "setuptools"}
    assert names == {"model-registry-client", "requests", "urllib3", "idna", "certifi", "charset-normalizer"}
    buffer = io.BytesIO()
    joblib.dump(LinearRegression().fit(ROWS, TARGET), buffer)

    ran = subprocess.run([str(lone_venv / "venv" / "bin" / "python"), "-c", ALONE, live_registry.url,
                          live_registry.admin_token, buffer.getvalue().hex()],
                         capture_output=True, text=True, cwd=lone_venv)  # outside the checkout

    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["predictions"] == pytest.approx(LinearRegression().fit(ROWS, TARGET).predict([[1.0, 2.0, 3.0]]))
    assert "joblib is not installed here" in result["refused"] and result["heavy"] == []
    declared = subprocess.run([str(lone_venv / "venv" / "bin" / "model-registry-client"), "plan", "-f", "registry.yaml"],
                              capture_output=True, text=True, cwd=lone_venv)
    assert declared.returncode == 1 and "pip install 'model-registry-client[declared]'" in declared.stderr
