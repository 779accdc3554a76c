"""Served forms: what predict calls, stored once per machine as arrays, comes back mapped and answers
bit for bit what scikit-learn answers; a damaged, missing or stale file is never served."""
import json

import numpy as np
import pytest
import sklearn
from sklearn.base import is_classifier
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, RobustScaler

from registry.serving.model_size import held_bytes
from registry.serving.predictors import TreePredictor, predictor_for
from registry.serving.served_forms import MANIFEST, ServedForms

SHA = "ab" * 32
OTHER = "cd" * 32


def assert_identical(ours, theirs):
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)
    if ours.dtype.kind == "f":
        assert np.array_equal(np.signbit(ours), np.signbit(theirs))


def answers(predictor, X, original):
    """predict, and predict_proba for a classifier, called as the registry calls them."""
    with sklearn.config_context(assume_finite=True):
        found = [predictor.predict(X)]
        if is_classifier(original):
            found.append(predictor.predict_proba(X))
    return found


def assert_same_answers(predictor, original, X):
    for ours, theirs in zip(answers(predictor, X, original), answers(original, X, original), strict=True):
        assert_identical(ours, theirs)


@pytest.fixture
def forms(tmp_path):
    return ServedForms(tmp_path / "forms", budget_bytes=1 << 30)


def stored(forms, estimator, sha=SHA):
    """The estimator's predictor written as a form and opened again, and how often it was built."""
    built = []

    def build():
        built.append(1)
        return {"predictor": predictor_for(estimator)}

    form = forms.make(sha, build)
    return form, len(built)


def test_every_supported_model_comes_back_from_its_form_answering_exactly_the_same(forms, model_case):
    form, builds = stored(forms, model_case.model)
    assert form is not None and builds == 1
    rebuilt = form.values["predictor"]
    assert type(rebuilt) is type(predictor_for(model_case.model))
    X = model_case.X
    assert_same_answers(rebuilt, model_case.model, X)
    again, builds = stored(forms, model_case.model)
    assert builds == 0  # found, not made again
    assert_identical(again.values["predictor"].predict(X), model_case.model.predict(X))


def test_scalers_and_their_parameters_come_back_too(forms):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)) * [1, 10, 1e-3, 1e6]
    model = make_pipeline(RobustScaler(), MinMaxScaler(clip=True), LogisticRegression()).fit(X, X[:, 0] > 0)
    form, _ = stored(forms, model)
    rows = rng.normal(size=(50, 4)) * 100
    assert_same_answers(form.values["predictor"], model, rows)


def test_a_forests_arrays_are_mapped_from_the_files_not_copied(forms):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 5))
    model = RandomForestRegressor(n_estimators=20, random_state=0).fit(X, X[:, 0])
    form, _ = stored(forms, model)
    compiled = form.values["predictor"].compiled
    for name in ("nodes", "value"):
        array = getattr(compiled, name)
        assert isinstance(array.base, np.memmap) and not array.flags.writeable, name
    assert form.mapped_bytes >= compiled.value.nbytes + compiled.nodes.nbytes
    # What the worker holds privately is small beside what it maps.
    assert held_bytes(form.values["predictor"]) < form.mapped_bytes / 10
    assert_identical(form.values["predictor"].predict(X[:30]), model.predict(X[:30]))


@pytest.mark.parametrize("damage", ["flip-a-byte", "truncate", "delete", "manifest"])
def test_a_damaged_or_missing_file_is_never_served_and_the_form_is_made_again(forms, damage):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 4))
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, X[:, 1])
    stored(forms, model)
    folder = forms.path_for(SHA)
    largest = max((p for p in folder.iterdir() if p.suffix == ".npy"), key=lambda p: p.stat().st_size)
    if damage == "flip-a-byte":
        data = bytearray(largest.read_bytes())
        data[len(data) // 2] ^= 0x40
        largest.write_bytes(bytes(data))
    elif damage == "truncate":
        largest.write_bytes(largest.read_bytes()[:-8])
    elif damage == "delete":
        largest.unlink()
    else:
        (folder / MANIFEST).write_text("{not json")

    assert forms.open(SHA) is None
    assert not folder.exists()  # taken away, so that it is made again
    form, builds = stored(forms, model)
    assert builds == 1
    assert_identical(form.values["predictor"].predict(X[:40]), model.predict(X[:40]))


def test_a_form_made_by_other_library_versions_is_made_again(forms):
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(np.eye(4), [1, 2, 3, 4])
    stored(forms, model)
    manifest_path = forms.path_for(SHA) / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["made_with"]["scikit-learn"] = "0.1"
    manifest_path.write_text(json.dumps(manifest))
    _, builds = stored(forms, model)
    assert builds == 1


def test_a_form_naming_a_class_outside_the_allow_list_is_refused(forms):
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(np.eye(4), [1, 2, 3, 4])
    stored(forms, model)
    manifest_path = forms.path_for(SHA) / MANIFEST
    manifest_path.write_text(manifest_path.read_text().replace(
        "registry.serving.predictors:TreePredictor", "subprocess:Popen"))
    assert forms.open(SHA) is None


def test_what_a_form_cannot_hold_is_served_as_loaded(forms):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    multi_output = RandomForestRegressor(n_estimators=2, random_state=0).fit(X, X[:, :2])
    form, builds = stored(forms, multi_output)
    assert form is None and builds == 1
    assert not forms.path_for(SHA).exists()


def test_forms_over_the_budget_go_least_recently_used_first_but_never_a_served_one(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(2000, 3))
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, X[:, 0])
    serving = {SHA}
    forms = ServedForms(tmp_path / "forms", budget_bytes=1 << 30, serving=lambda: serving)
    digests = [SHA, OTHER, "ef" * 32]
    for sha in digests:
        stored(forms, model, sha)
    one = sum(f.stat().st_size for f in forms.path_for(SHA).iterdir())
    forms.budget_bytes = one  # room for one form: the served one stays, over the budget or not
    forms.open("ef" * 32)
    assert sorted(forms.prune()) == [OTHER, "ef" * 32]
    assert forms.open(SHA) is not None


def test_the_predictors_state_leaves_out_what_is_rebuilt(forms):
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(np.eye(4), [1, 2, 3, 4])
    predictor = predictor_for(model)
    assert isinstance(predictor, TreePredictor)
    state = predictor.compiled.__getstate__()
    assert "_walker" not in state
    assert set(state) == {"nodes", "roots", "value", "n_features", "averaged", "classes"}
