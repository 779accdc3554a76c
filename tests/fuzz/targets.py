"""What each fuzzer calls with one input, as the service calls it: every reader of a model file, then the compiled
form it made answering and explaining rows (the C walks); the served forms' reader; the walker and TreeSHAP
on node records built from the input; the compiled reader of a predict body's rows (``json_rows.c``).

A target returns when the input was read or refused the documented way (``InvalidArtifact`` and its kinds for
an upload, ``None`` for a served form that cannot be used, ``InvalidNodes``/``NotExplainable`` for records);
anything else it raises is what the service would answer with a 500, and the fuzzer reports it as a crash. A
sanitizer's report (the library of ``tests/fuzz/sanitized.py``) aborts the process: a crash too.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
from pathlib import Path

import numpy as np
import orjson

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
from registry.serving import json_rows as json_rows_reader

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
        form, names = model_files.read_model_file(
            framework, xgboost_files.read_upload(data, MAX_MODEL_BYTES), None, max_features=MAX_FEATURES)
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


def json_rows(data: bytes) -> None:
    """A predict body read by ``native/json_rows.c`` where it takes it (the input itself, the input as the rows of
    one, and a body the input spells, :func:`_body`): whatever it takes orjson must take too, reading the same
    numbers bit for bit and the same rest (a body orjson refuses must leave a rest it refuses). The C reader also
    reads a copy of exactly the body's bytes, so that the sanitizers see a read past its end (a bytes object has a
    NUL there)."""
    for body in (data, b'{"instances": ' + data + b"}", _body(data)):
        for max_rows in (2, 1000):
            _json_rows(body, max_rows)


# Numbers' texts at the edges of what json_rows.c reads (a double's range, its subnormals, 64 characters, integers
# past 64 bits, forms JSON refuses), and the characters a number's text is made of.
_NUMBER_TEXTS = (b"0", b"-0", b"-0.0", b"1", b"-1", b"1e308", b"1.7976931348623157e308", b"1.8e308",
                 b"2.2250738585072014e-308", b"2.225073858507201e-308", b"5e-324", b"1e-400", b"18446744073709551615",
                 b"18446744073709551616", b"-9223372036854775809", b"9" * 63, b"9" * 64, b"0." + b"1" * 62, b"1E+2",
                 b"2.5e-3", b"01", b"1.", b".5", b"+1", b"1e", b"-", b"NaN", b"Infinity", b'"1"', b"null", b"[1]",
                 b"true")
_NUMBERS = _NUMBER_TEXTS.index(b"01")  # the texts before it are JSON numbers
_NUMBER_CHARACTERS = b"0123456789-+.eE \n,]["
_SEPARATORS = (b",", b", ", b" ,", b",\n\t", b"\r\n,", b"", b";", b",,")


def _body(data: bytes) -> bytes:
    """A predict body made from the input: rows of numbers' texts chosen or spelt by it, spaced and separated as
    it says, sometimes with other members, an escaped name, a second ``instances`` or a cut (each rare choice is a
    high probability: an input that has run out reads as 0, the plain body)."""
    import atheris

    take = atheris.FuzzedDataProvider(data)
    width = take.ConsumeIntInRange(1, 4)
    rows = []
    for _ in range(take.ConsumeIntInRange(1, 6)):
        cells = []
        for _ in range(width + (take.ConsumeIntInRange(-1, 1) if take.ConsumeProbability() > 0.9 else 0)):
            chance = take.ConsumeProbability()
            if chance < 0.9:  # mostly a number JSON has, sometimes one it has not
                cells.append(_NUMBER_TEXTS[take.ConsumeIntInRange(0, _NUMBERS - 1 if chance < 0.85
                                                                  else len(_NUMBER_TEXTS) - 1)])
            else:
                cells.append(bytes(_NUMBER_CHARACTERS[take.ConsumeIntInRange(0, len(_NUMBER_CHARACTERS) - 1)]
                                   for _ in range(take.ConsumeIntInRange(1, 70))))
        separator = _SEPARATORS[take.ConsumeIntInRange(0, 2) if take.ConsumeProbability() < 0.95
                                else take.ConsumeIntInRange(0, len(_SEPARATORS) - 1)]
        rows.append(b"[" + separator.join(cells) + b"]")
    members = [b'"instances"' + b" " * take.ConsumeIntInRange(0, 2) + b":" + b"[" + b",".join(rows) + b"]"]
    for extra in (b'"return_proba": true', b'"instan\\u0063es": 1', b'"instances": [[1]]', b'"x": {"y": ["]}"]}',
                  b'"s": "\\""'):
        if take.ConsumeProbability() > 0.85:
            members.insert(take.ConsumeIntInRange(0, len(members)), extra)
    body = b"{" + b",".join(members) + b"}" + b" " * take.ConsumeIntInRange(0, 1)
    if take.ConsumeProbability() > 0.95:
        body = body[:take.ConsumeIntInRange(0, len(body))]
    return body


def _json_rows(body: bytes, max_rows: int) -> None:
    found = json_rows_reader.split(body, max_rows)
    assert _exact_read(body, max_rows) == (None if found is None else found[1].matrix.tolist())
    if found is None:
        return
    rest, rows = found
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            orjson.loads(rest)
        except orjson.JSONDecodeError:
            return
        raise AssertionError("json_rows.c read the rows of a body orjson refuses, and the rest parses") from None
    expected = np.asarray(parsed["instances"], dtype=np.float64)
    assert rows.matrix.shape == expected.shape and rows.matrix.tobytes() == expected.tobytes(), (rows.matrix, expected)
    assert orjson.loads(rest) == {**parsed, "instances": None}


def _exact_read(body: bytes, max_rows: int) -> list | None:
    """The rows ``json_rows.c`` reads from a buffer of exactly ``body``'s bytes (None where it takes none)."""
    exact = np.frombuffer(body, dtype=np.uint8).copy()
    span = (ctypes.c_size_t * 2)()
    if not json_rows_reader._span(exact.ctypes.data, len(body), span):
        return None
    start, end = span
    cells = np.empty((end - start) // 2 + 1, dtype=np.float64)
    width = ctypes.c_size_t()
    rows = json_rows_reader._read(exact.ctypes.data + start, end - start, max_rows, cells.size, cells.ctypes.data,
                                  ctypes.byref(width))
    return None if rows < 0 else cells[:rows * width.value].reshape(rows, width.value).tolist()


TARGETS = {
    "xgboost_json": model_file,
    "xgboost_ubj": model_file,
    "lightgbm": model_file,
    "pickle": estimator_file,
    "skops": estimator_file,
    "served_form": served_form,
    "walk": walk,
    "json_rows": json_rows,
}
