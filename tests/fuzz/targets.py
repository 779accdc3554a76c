"""What each fuzzer calls with one input, as the service calls it: every reader of a model file, then the compiled
form it made answering and explaining rows (the C walks); the served forms' reader; the walker and TreeSHAP
on node records built from the input.

A target returns when the input was read or refused the documented way (``InvalidArtifact`` and its kinds for
an upload, ``None`` for a served form that cannot be used, ``InvalidNodes``/``NotExplainable`` for records);
anything else it raises is what the service would answer with a 500, and the fuzzer reports it as a crash. A
sanitizer's report (the library of ``tests/fuzz/sanitized.py``) aborts the process: a crash too.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from registry.artifacts import served_forms
from registry.artifacts.introspect import describe
from registry.artifacts.loading import (  # noqa: F401 (imported here so that the fuzzer instruments them)
    checks,
    lightgbm_files,
    model_files,
    pickles,
    skops_files,
    ubjson,
    widths,
    xgboost_files,
    xgboost_json,
    xgboost_trees,
)
from registry.artifacts.safe_pickle import load_estimator
from registry.errors import InvalidArtifact
from registry.inference import tree_shap, tree_walk  # noqa: F401 (instrumented, and load the sanitized library)
from registry.inference.fast_boosting import CompiledBoosting
from registry.inference.fast_trees import CompiledTrees
from registry.inference.predictors import TreePredictor, predictor_for
from registry.inference.tree_shap import NotExplainable, TreeExplainer
from registry.inference.tree_walk import (
    CATEGORICAL,
    NAN_LEFT,
    NODE,
    WIDE_NODE,
    ZERO_MISSING,
    BoostedWalker,
    InvalidNodes,
    NodesDamaged,
    Walker,
)

MAX_MODEL_BYTES = 64 * 2**20
MAX_FEATURES = 100_000
# Rows the compiled forms answer and explain: zeros, missing values, and values on both sides of every split.
_ROW_VALUES = (0.0, np.nan, -1.5, 3.0, 1e-36, -1e30, 7.0, 0.5)
# The fuzzer's own bound on the rows it asks for (features × outputs): larger models are read, not walked.
_MAX_CELLS = 200_000


def _rows(n_features: int) -> np.ndarray:
    return np.array([np.roll(_ROW_VALUES, shift)[np.arange(n_features) % len(_ROW_VALUES)] for shift in range(4)])


def answer(compiled: CompiledBoosting | CompiledTrees) -> None:
    """What serving does with a compiled form: predict (and predict_proba for a classifier) and explain rows."""
    outputs = len(compiled.baseline) if isinstance(compiled, CompiledBoosting) else compiled.value.shape[1]
    if compiled.n_features * outputs > _MAX_CELLS:
        return
    rows = _rows(compiled.n_features)
    compiled.predict(rows)
    if compiled.classes is not None:
        compiled.predict_proba(rows)
    try:
        compiled.explain(rows)
    except NotExplainable:
        pass


def model_file(data: bytes) -> None:
    """An upload of an XGBoost (JSON, UBJSON) or LightGBM file: read, described (``POST …/versions``), served."""
    framework = model_files.framework_of(data[:64])
    if framework is None:
        return
    try:
        form, names = model_files.read_model_file(framework, xgboost_files.read_upload(data, MAX_MODEL_BYTES), None)
        xgboost_files.check_width(form, MAX_FEATURES)
        model_files.describe_model_file(framework, form, names=names, given=None)
    except InvalidArtifact:
        return
    answer(form)


def estimator_file(data: bytes) -> None:
    """An upload of a joblib, pickle or skops file: loaded by the restricted loader, described, served."""
    try:
        loaded = load_estimator(data, max_bytes=MAX_MODEL_BYTES, max_features=MAX_FEATURES)
        describe(loaded.estimator, None, loaded.sklearn_version)
    except InvalidArtifact:
        return
    predictor = predictor_for(loaded.estimator)
    if isinstance(predictor, TreePredictor):
        answer(predictor.compiled)


class _Forms:
    """A served-forms directory whose one form's files are the seeds' arrays; each input is its manifest."""

    SHA256 = "ab" * 32

    def __init__(self, arrays: Path, root: Path):
        self.arrays, self.root = arrays, root
        self.forms = served_forms.ServedForms(root, budget_bytes=2**30, key=b"fuzz")

    def open(self, manifest: bytes):
        path = self.forms.path_for(self.SHA256)
        if os.path.lexists(path):
            shutil.rmtree(path)
        path.mkdir(parents=True)
        for array in self.arrays.iterdir():
            os.link(array, path / array.name)
        text = manifest.decode("utf-8", "replace")  # what the server writes is always text
        signed = {"hmac": self.forms._signature(text), "manifest": text}
        (path / served_forms.MANIFEST).write_text(json.dumps(signed), encoding="utf-8")
        return self.forms.open(self.SHA256)


_forms: _Forms | None = None


def served_form(data: bytes) -> None:
    """A served form whose manifest (signed with the server's key) is the input, over the seeds' real arrays:
    opened as a worker opens it (a form, or None where it cannot be used), then its predictor answers."""
    global _forms
    if _forms is None:
        work = Path(os.environ["FUZZ_WORK"])
        _forms = _Forms(work / "seeds" / "served_form_arrays", work / "forms")
    form = _forms.open(data)
    if form is None:
        return
    predictor = form.values.get("predictor") if isinstance(form.values, dict) else None
    if isinstance(predictor, TreePredictor) and isinstance(predictor.compiled, (CompiledBoosting, CompiledTrees)):
        answer(predictor.compiled)


def walk(data: bytes) -> None:
    """Node records, leaf values, covers and rows made from the input, checked by the walker's and the explainer's
    constructors, then walked and explained; sometimes the records change after they were checked, as a mapped
    file can (the walk then raises ``NodesDamaged``, never reads outside them)."""
    with np.errstate(all="ignore"):  # the records' and rows' numbers are any float64, cast to float32
        _walk(data)


def _walk(data: bytes) -> None:
    import atheris

    take = atheris.FuzzedDataProvider(data)
    wide = take.ConsumeBool()
    n_features = take.ConsumeIntInRange(1, 6)
    n_outputs = take.ConsumeIntInRange(1, 3)
    n_nodes = take.ConsumeIntInRange(1, 40)
    nodes = np.zeros(n_nodes, dtype=WIDE_NODE if wide else NODE)
    n_blocks = take.ConsumeIntInRange(0, 3)
    for i in range(n_nodes):
        leaf = i == n_nodes - 1 or take.ConsumeProbability() < 0.4
        nodes["child"][i] = (i, i) if leaf else (take.ConsumeIntInRange(i + 1, n_nodes - 1),
                                                 take.ConsumeIntInRange(i + 1, n_nodes - 1))
        if take.ConsumeProbability() < 0.05:  # a record the checks must refuse
            nodes["child"][i, take.ConsumeIntInRange(0, 1)] = take.ConsumeIntInRange(-2, n_nodes + 1)
        nodes["threshold"][i] = _number(take)
        flags = take.ConsumeIntInRange(0, 7)
        feature = take.ConsumeIntInRange(0, n_features - (0 if take.ConsumeProbability() < 0.03 else 1))
        if flags & 1:
            feature |= int(NAN_LEFT)
        if wide and flags & 2:
            feature |= int(CATEGORICAL)
            nodes["threshold"][i] = 256 * take.ConsumeIntInRange(0, 2)
            nodes["bitset"][i] = take.ConsumeIntInRange(0, n_blocks + 1)
        if wide and flags & 4:
            feature |= int(ZERO_MISSING)
        nodes["feature"][i] = feature
    n_roots = take.ConsumeIntInRange(1, 3)
    roots = np.array([take.ConsumeIntInRange(-1 if take.ConsumeProbability() < 0.03 else 0, n_nodes - 1)
                      for _ in range(n_roots)], dtype=np.int32)
    words = np.frombuffer(take.ConsumeBytes(n_blocks * 32).ljust(n_blocks * 32, b"\0"), dtype=np.uint32)
    bitsets = np.ascontiguousarray(words.reshape(n_blocks, 8))
    cover = np.array([abs(_number(take)) if take.ConsumeProbability() < 0.97 else _number(take)
                      for _ in range(n_nodes)])
    n_rows = take.ConsumeIntInRange(1, 20)
    rows = np.array([[_number(take) for _ in range(n_features)] for _ in range(n_rows)])
    damage = take.ConsumeIntInRange(0, 255) if take.ConsumeProbability() < 0.2 else None
    try:
        if wide:
            _walk_wide(take, nodes, roots, bitsets, cover, rows, n_features, n_outputs, damage)
        else:
            _walk_trees(take, nodes, roots, cover, rows, n_features, n_outputs, damage)
    except (InvalidNodes, NotExplainable):
        return
    except NodesDamaged:
        if damage is None:
            raise


def _number(take) -> float:
    special = take.ConsumeIntInRange(0, 15)
    return (np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-36)[special] if special < 6 else take.ConsumeRegularFloat()


def _damaged(nodes: np.ndarray, damage: int | None) -> None:
    """Overwrite one byte of the records after they were checked (a file written in place under a worker)."""
    if damage is not None:
        raw = nodes.view(np.uint8)
        raw[damage % len(raw)] ^= 0xFF


def _walk_wide(take, nodes, roots, bitsets, cover, rows, n_features, n_outputs, damage) -> None:
    columns = np.array([take.ConsumeIntInRange(0, n_outputs - 1) for _ in roots], dtype=np.int32)
    value = np.array([_number(take) for _ in nodes])
    baseline = np.array([_number(take) for _ in range(n_outputs)])
    options = take.ConsumeIntInRange(0, 7)
    float32_sums, lightgbm_rows, float32_rows = bool(options & 1), bool(options & 2), bool(options & 4)
    walker = BoostedWalker(nodes, roots, columns, value, bitsets, baseline, n_features=n_features,
                           float32_sums=float32_sums, lightgbm_rows=lightgbm_rows, float32_rows=float32_rows)
    explainer = _explainer(nodes=nodes, roots=roots, value=value, cover=cover, n_features=n_features,
                           n_outputs=n_outputs, columns=columns, bitsets=bitsets, baseline=baseline,
                           lightgbm_rows=lightgbm_rows)
    _damaged(nodes, damage)
    try:
        walker.output(np.ascontiguousarray(rows))
    except ValueError as error:  # the documented refusal of a row XGBoost refuses
        if not (float32_sums and "inf" in str(error)):
            raise
    if explainer is not None:
        explainer.explain(np.ascontiguousarray(rows))


def _walk_trees(take, nodes, roots, cover, rows, n_features, n_outputs, damage) -> None:
    value = np.array([[_number(take) for _ in range(n_outputs)] for _ in nodes])
    averaged = len(roots) > 1 or take.ConsumeBool()
    walker = Walker(nodes, roots, value, n_features=n_features, averaged=averaged)
    explainers = [_explainer(nodes=nodes, roots=roots, value=value, cover=cover, n_features=n_features,
                             n_outputs=n_outputs, averaged=averaged, paths_max_bytes=paths)
                  for paths in (0, None)]  # the records walked, and the private copy of the paths
    _damaged(nodes, damage)
    float_rows = np.ascontiguousarray(rows, dtype=np.float32)
    walker.output(float_rows)
    for explainer in explainers:
        if explainer is not None:
            explainer.explain(float_rows)


def _explainer(**arguments) -> TreeExplainer | None:
    try:
        return TreeExplainer(**arguments)
    except NotExplainable:
        return None


TARGETS = {
    "xgboost_json": model_file,
    "xgboost_ubj": model_file,
    "lightgbm": model_file,
    "pickle": estimator_file,
    "skops": estimator_file,
    "served_form": served_form,
    "walk": walk,
}
