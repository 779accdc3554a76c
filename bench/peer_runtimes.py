"""The other ways to serve a boosted model fast, for bench.boosting's side-by-side columns: ONNX Runtime
(the model converted by onnxmltools) and treelite (compiled to a shared library by tl2cgen with gcc),
each held to one thread. Each is optional: ``pip install -r requirements-bench.txt`` installs them
(``make bench`` does); where one does not install or cannot convert the model, its column says why.

Each ``*_predictors`` function answers ``{name: predict}`` where ``predict(rows)`` gives the positive
class's probability per row (float64), or ``{name: "why not"}``.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]
_KEPT: list = []  # libraries' directories kept for the run


def onnx_predictor(convert: Callable[[], object]) -> Predict | str:
    """ONNX Runtime on one thread over the model ``convert()`` makes; or why it cannot."""
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed"
    try:
        onnx_model = convert()
    except Exception as exc:  # a converter refusing the model: said, not raised
        return f"not converted: {exc}"[:120]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    probabilities = next(i for i, output in enumerate(session.get_outputs()) if "prob" in output.name)

    def predict(rows: np.ndarray) -> np.ndarray:
        found = session.run(None, {name: rows.astype(np.float32)})[probabilities]
        if isinstance(found, list):  # a ZipMap output: one {class: p} per row
            return np.array([row[1] for row in found], dtype=np.float64)
        return np.asarray(found, dtype=np.float64)[:, -1]

    return predict


def treelite_predictor(load: Callable[[], object]) -> Predict | str:
    """treelite's model ``load()`` makes, compiled by tl2cgen with gcc and called on one thread; or why not."""
    try:
        import tl2cgen
    except ImportError:
        return "treelite / tl2cgen is not installed"
    try:
        model = load()
    except Exception as exc:
        return f"not loaded: {exc}"[:120]
    folder = tempfile.TemporaryDirectory(prefix="bench-treelite-")
    _KEPT.append(folder)
    library = Path(folder.name) / "model.so"
    tl2cgen.export_lib(model, toolchain="gcc", libpath=str(library), params={"parallel_comp": 8}, verbose=False)
    predictor = tl2cgen.Predictor(str(library), nthread=1)

    def predict(rows: np.ndarray) -> np.ndarray:
        found = np.asarray(predictor.predict(tl2cgen.DMatrix(rows, dtype="float64")), dtype=np.float64)
        return found.reshape(len(rows), -1)[:, -1]

    return predict


def xgboost_predictors(booster, n_features: int) -> dict[str, Predict | str]:
    """ONNX Runtime and treelite for an XGBoost ``binary:logistic`` booster."""
    def convert():
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
        from xgboost import XGBClassifier

        classifier = XGBClassifier()
        classifier._Booster = booster
        classifier.n_classes_ = 2
        return convert_xgboost(classifier, initial_types=[("input", FloatTensorType([None, n_features]))])

    def load():
        import treelite

        return treelite.frontend.from_xgboost(booster)

    return {"ONNX Runtime": onnx_predictor(convert), "treelite": treelite_predictor(load)}


def lightgbm_predictors(booster, n_features: int) -> dict[str, Predict | str]:
    """ONNX Runtime and treelite for a LightGBM ``binary`` booster."""
    def convert():
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        return convert_lightgbm(booster, initial_types=[("input", FloatTensorType([None, n_features]))],
                                zipmap=False)

    def load():
        import treelite

        return treelite.frontend.from_lightgbm(booster)

    return {"ONNX Runtime": onnx_predictor(convert), "treelite": treelite_predictor(load)}
