"""Served forms: what predict calls, stored once per machine as arrays, comes back mapped and answers
bit for bit what scikit-learn answers; a damaged, missing or stale file is never served."""
import hashlib
import json
import os
import shutil
import zlib

import numpy as np
import pytest
import sklearn
from sklearn.base import is_classifier
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, RobustScaler

from registry.serving.model_size import held_bytes
from registry.inference.predictors import TreePredictor, predictor_for
from registry.artifacts.served_forms import MANIFEST, ServedForms

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


def signed_anew(forms, sha, edit) -> None:
    """Change the form's manifest text with ``edit`` and sign it with the server's own key (as the server
    would have written it): what is then refused is refused for what it says."""
    path = forms.path_for(sha) / MANIFEST
    text = edit(json.loads(path.read_text())["manifest"])
    path.write_text(json.dumps({"hmac": forms._signature(text), "manifest": text}))


def compiled_state_of(manifest: dict) -> list:
    """The stored state (its ``[name, value]`` pairs) of the compiled model of a form's predictor."""
    state = manifest["values"]["dict"][0][1]["state"]["dict"]
    return next(value for key, value in state if key == "compiled")["state"]["dict"]


def test_a_form_made_by_other_library_versions_is_made_again(forms):
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(np.eye(4), [1, 2, 3, 4])
    stored(forms, model)
    signed_anew(forms, SHA, lambda text: text.replace(f'"scikit-learn": "{sklearn.__version__}"', '"scikit-learn": "0.1"'))
    _, builds = stored(forms, model)
    assert builds == 1


def test_a_form_naming_a_class_outside_the_allow_list_is_refused(forms):
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(np.eye(4), [1, 2, 3, 4])
    stored(forms, model)
    signed_anew(forms, SHA, lambda text: text.replace("registry.inference.predictors:TreePredictor", "subprocess:Popen"))
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
    assert "_walker" not in state and "_explainer" not in state
    assert set(state) == {"nodes", "roots", "value", "n_features", "averaged", "classes", "cover"}


def forge(folder, name: str, array: np.ndarray) -> None:
    """Replace the form's file ``name`` with ``array`` and write every checksum its manifest keeps of it
    anew, as someone who can write the cache but does not hold the server's key would."""
    np.save(folder / name, array, allow_pickle=False)
    data = (folder / name).read_bytes()
    document = json.loads((folder / MANIFEST).read_text())
    signed = "manifest" in document
    manifest = json.loads(document["manifest"]) if signed else document
    entry = manifest["files"][name]
    entry["bytes"] = len(data)
    if "crc32" in entry:
        entry["crc32"] = zlib.crc32(data)
    if "sha256" in entry:
        entry["sha256"] = hashlib.sha256(data).hexdigest()
    if signed:
        document["manifest"] = json.dumps(manifest)
    (folder / MANIFEST).write_text(json.dumps(document if signed else manifest))


def value_file(folder, compiled) -> str:
    """The name of the file holding a compiled forest's leaf values."""
    for path in folder.glob("*.npy"):
        if np.array_equal(np.load(path), compiled.value):
            return path.name
    raise AssertionError("no value file")


@pytest.fixture(scope="module")
def classifier():
    X = np.random.default_rng(6).normal(size=(3000, 4))
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(X, X[:, 0] > 0), X


def test_a_form_whose_file_was_replaced_with_its_checksums_updated_is_refused_and_made_again(forms, classifier):
    model, X = classifier
    form, _ = stored(forms, model)
    compiled = form.values["predictor"].compiled
    folder = forms.path_for(SHA)
    forge(folder, value_file(folder, compiled), np.ascontiguousarray(compiled.value[:, ::-1]))  # answers inverted

    assert forms.open(SHA) is None
    again, builds = stored(forms, model)
    assert builds == 1
    assert_same_answers(again.values["predictor"], model, X[:100])


def test_a_form_is_served_only_for_the_artifact_it_was_made_from(forms, classifier):
    model, _ = classifier
    stored(forms, model)
    forms.path_for(OTHER).parent.mkdir(parents=True)
    shutil.copytree(forms.path_for(SHA), forms.path_for(OTHER))  # a valid form, of another artifact

    assert forms.open(OTHER) is None
    assert forms.open(SHA) is not None


def test_forms_are_shared_by_servers_holding_the_same_key_only(tmp_path, classifier):
    model, _ = classifier
    ServedForms(tmp_path / "forms", budget_bytes=1 << 30, key=b"replica key").make(SHA, lambda: {"predictor": predictor_for(model)})
    assert ServedForms(tmp_path / "forms", budget_bytes=1 << 30, key=b"replica key").open(SHA) is not None
    assert ServedForms(tmp_path / "forms", budget_bytes=1 << 30, key=b"another key").open(SHA) is None


def test_links_in_the_forms_are_never_followed(forms, classifier, tmp_path):
    model, _ = classifier
    stored(forms, model)
    outside = tmp_path / "passwd"
    outside.write_text((forms.path_for(SHA) / MANIFEST).read_text())
    os.utime(outside, (1_000_000, 1_000_000))
    stored(forms, model, OTHER)
    (forms.path_for(OTHER) / MANIFEST).unlink()
    (forms.path_for(OTHER) / MANIFEST).symlink_to(outside)
    third = "ef" * 32
    forms.path_for(third).parent.mkdir(parents=True)
    forms.path_for(third).symlink_to(forms.path_for(SHA), target_is_directory=True)

    assert forms.open(OTHER) is None and forms.open(third) is None
    assert os.stat(outside).st_mtime == 1_000_000  # never touched through the link
    assert not forms.path_for(third).exists() and forms.open(SHA) is not None  # the link went, not its target
    forms.budget_bytes = 0
    forms.prune()
    assert outside.exists()


def test_a_mapped_file_written_in_place_is_told_apart_from_one_taken_away(forms):
    rng = np.random.default_rng(8)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(rng.normal(size=(3000, 4)), rng.random(3000) > 0.5)
    form, _ = stored(forms, model)  # random labels: deep trees, records past what is mapped
    assert form.mapped_from and not any(mapped.written() for mapped in form.mapped_from)
    forms.budget_bytes = 0
    forms.prune()  # the form taken away (made again elsewhere, say): what is mapped is unchanged
    assert not forms.path_for(SHA).exists() and not any(mapped.written() for mapped in form.mapped_from)

    again, _ = stored(forms, model)
    mapped = again.mapped_from[0]
    path = forms.path_for(SHA) / mapped.name
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"\xff" * 8)
    assert mapped.written()


def test_an_xgboost_model_comes_back_from_its_form_answering_exactly_the_same(forms):
    xgb = pytest.importorskip("xgboost")
    from registry.artifacts.loading.xgboost_files import read_xgboost

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1},
                        xgb.DMatrix(X, label=rng.integers(0, 3, 200)), 10)
    compiled, _ = read_xgboost(bytes(booster.save_raw("ubj")), classes=["a", "b", "c"])
    form = forms.make(SHA, lambda: {"predictor": TreePredictor([], compiled)})
    rebuilt = form.values["predictor"]
    assert rebuilt.compiled.float32_sums
    assert_identical(rebuilt.predict_proba(X), compiled.predict_proba(X))
    assert_identical(rebuilt.predict_proba(X).astype(np.float32), booster.predict(xgb.DMatrix(X)))
    assert_identical(rebuilt.predict(X), compiled.predict(X))


@pytest.mark.parametrize("classes, link", [([], None), (["only"], None), (None, None), (["a", "b", "c"], "xgboost_sigmoid")])
def test_a_form_whose_boosted_classifier_cannot_name_its_answers_is_refused_not_served_broken(forms, classes, link):
    """Found by the served forms' fuzzer (tests/fuzz): an XGBoost classifier's form whose classes were emptied was
    served, and every predict raised IndexError (a 500); so was one whose three outputs were read by the binary
    classifier's link (ValueError). Classes too few for its outputs (or none), or a link for other outputs, make it
    unusable."""
    xgb = pytest.importorskip("xgboost")
    from registry.artifacts.loading.xgboost_files import read_xgboost

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(X, label=rng.integers(0, 3, 60)), 2)
    compiled, _ = read_xgboost(bytes(booster.save_raw("ubj")), classes=["a", "b", "c"])
    forms.make(SHA, lambda: {"predictor": TreePredictor([], compiled)})

    def renamed(text: str) -> str:
        manifest = json.loads(text)
        compiled_state = compiled_state_of(manifest)
        entry = next(pair for pair in compiled_state if pair[0] == "classes")
        entry[1] = None if classes is None else {"objects": classes, "shape": [len(classes)]}
        if link is not None:
            next(pair for pair in compiled_state if pair[0] == "link")[1] = link
        return json.dumps(manifest)

    signed_anew(forms, SHA, renamed)
    assert forms.open(SHA) is None


@pytest.mark.parametrize("classes", [{"tuple": "20.npy"}, {"objects": ["only"], "shape": [1]}, {"objects": [], "shape": [0]}])
def test_a_form_whose_forest_classifier_cannot_name_its_answers_is_refused_not_served_broken(forms, classes):
    """Found by the served forms' fuzzer (tests/fuzz): a forest classifier's form whose classes were a tuple (or
    too few for its trees' outputs) was served, and every predict raised TypeError or IndexError (a 500)."""
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(np.eye(4), [0, 1, 0, 1])
    stored(forms, model)

    def renamed(text: str) -> str:
        manifest = json.loads(text)
        compiled_state = compiled_state_of(manifest)
        next(pair for pair in compiled_state if pair[0] == "classes")[1] = classes
        return json.dumps(manifest)

    signed_anew(forms, SHA, renamed)
    assert forms.open(SHA) is None


def test_a_form_with_an_empty_value_record_is_refused_not_a_crash(forms):
    """Found by the served forms' fuzzer (tests/fuzz): a value stored as ``{}`` (no tag) made opening the form raise
    StopIteration, which the worker did not take for an unusable form."""
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(np.eye(4), [1, 2, 3, 4])
    stored(forms, model)

    def emptied(text: str) -> str:
        manifest = json.loads(text)
        compiled_state = compiled_state_of(manifest)
        next(pair for pair in compiled_state if pair[0] == "nodes")[1] = {}
        return json.dumps(manifest)

    signed_anew(forms, SHA, emptied)
    assert forms.open(SHA) is None


@pytest.mark.parametrize("state", ['{"dict": []}', '{"dict": [["transforms", []], ["compiled", [1, 2]]]}'])
def test_a_form_whose_predictor_lacks_its_compiled_model_is_refused_not_served_broken(forms, state):
    """Found by the served forms' fuzzer (tests/fuzz): a TreePredictor's state without ``compiled`` (or with
    something else in its place) was set as it came, and every predict then raised AttributeError."""
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(np.eye(4), [1, 2, 3, 4])
    stored(forms, model)

    def emptied(text: str) -> str:
        manifest = json.loads(text)
        manifest["values"]["dict"][0][1] = {"object": "registry.inference.predictors:TreePredictor",
                                            "state": json.loads(state)}
        return json.dumps(manifest)

    signed_anew(forms, SHA, emptied)
    assert forms.open(SHA) is None


@pytest.mark.parametrize("text", ["7", '{"made_with": {}, "files": [], "values": {}}', "[" * 100_000 + "]" * 100_000])
def test_a_manifest_that_is_not_one_the_server_writes_makes_the_form_unusable_not_a_500(forms, text):
    """Found by the served forms' fuzzer (tests/fuzz): a signed manifest that is a number raised AttributeError out of
    ``open`` (so out of the worker's load), where an unusable form is made again."""
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(np.eye(4), [1, 2, 3, 4])
    stored(forms, model)
    signed_anew(forms, SHA, lambda _: text)
    assert forms.open(SHA) is None
