"""The fuzzers' seed corpora: small real model files made here by XGBoost, LightGBM, scikit-learn, joblib and
skops (the test suite's oracles), and the served forms the registry makes of some of them.

``python -m tests.fuzz.seeds DIR`` writes ``DIR/<target>/<name>`` for each fuzzer (a few KB each; nothing is
committed), and ``DIR/served_form_arrays/`` the arrays the served forms' manifests name.
"""
from __future__ import annotations

import io
import json
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np


def _data(n_classes: int | None = 2, rows: int = 60, features: int = 3):
    generator = np.random.default_rng(7)
    X = generator.normal(size=(rows, features))
    X[::9, 1] = np.nan
    if n_classes is None:
        return X, X[:, 0] * 2 + np.nan_to_num(X[:, 1])
    return X, (np.nan_to_num(X[:, 0]) * 3).astype(int) % n_classes


def xgboost_models():
    """Boosters of each objective the registry serves."""
    import xgboost

    for name, objective, n_classes in (("binary", "binary:logistic", 2), ("softprob", "multi:softprob", 3),
                                       ("regression", "reg:squarederror", None)):
        X, y = _data(n_classes)
        params = {"objective": objective, "max_depth": 3, "eta": 0.5, "nthread": 1, "base_score": 0.5}
        if n_classes and n_classes > 2:
            params["num_class"] = n_classes
        names = ["a", "b", "c"] if name == "binary" else None
        yield name, xgboost.train(params, xgboost.DMatrix(X, y, feature_names=names), num_boost_round=3)


def lightgbm_models():
    """LightGBM's text files of each kind of objective, one with a categorical split."""
    import lightgbm

    for name, params, n_classes in (("binary", {"objective": "binary"}, 2),
                                    ("multiclass", {"objective": "multiclass", "num_class": 3}, 3),
                                    ("regression", {"objective": "regression"}, None),
                                    ("categorical", {"objective": "regression"}, None)):
        X, y = _data(n_classes)
        if name == "categorical":
            X[:, 2] = np.arange(len(X)) % 5
        dataset = lightgbm.Dataset(X, y, categorical_feature=[2] if name == "categorical" else "auto")
        booster = lightgbm.train({**params, "num_leaves": 4, "min_data_in_leaf": 3, "verbose": -1,
                                  "num_threads": 1}, dataset, num_boost_round=3)
        yield name, booster.model_to_string().encode()


def estimators():
    """Fitted scikit-learn models of the kinds the registry serves."""
    from sklearn.ensemble import (GradientBoostingClassifier, HistGradientBoostingRegressor,
                                  RandomForestClassifier)
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeRegressor

    X, y = _data(2)
    Xr, yr = _data(None)
    clean = np.nan_to_num(X)
    yield "tree", DecisionTreeRegressor(max_depth=3, random_state=0).fit(np.nan_to_num(Xr), yr)
    yield "forest", RandomForestClassifier(n_estimators=2, max_depth=3, random_state=0).fit(clean, y)
    yield "gradient", GradientBoostingClassifier(n_estimators=2, max_depth=2, random_state=0).fit(clean, y)
    yield "histogram", HistGradientBoostingRegressor(max_iter=2, max_depth=2).fit(Xr, yr)
    yield "logistic", LogisticRegression().fit(clean, y)
    yield "pipeline", make_pipeline(StandardScaler(), LinearRegression()).fit(np.nan_to_num(Xr), yr)


def predict_bodies() -> dict[str, bytes]:
    """Predict bodies as clients send them (and rows alone, which the target also reads as a body's): numbers of
    every form JSON has, spacing, other members."""
    rows = np.round(np.random.default_rng(7).normal(size=(6, 3)), 4).tolist()
    return {
        "body.json": json.dumps({"instances": rows}).encode(),
        "compact.json": json.dumps({"instances": rows, "return_proba": True}, separators=(",", ":")).encode(),
        "members.json": json.dumps({"model": "m", "instances": rows, "explain": {"top": [1, 2]}}, indent=1).encode(),
        "forms.json": b'{"instances": [[0, -0, 1e5, -2.5E-3, 1.7976931348623157e308, 2.2250738585072014e-308], '
                      b'[18446744073709551615, -9223372036854775808, 0.1, 1E+2, 123456789012345678901234, 5e-324]]}',
        "rows.json": b'[[1, 2.5, -3], [4e1, 5, 6.0]]',
    }


def write(directory: Path) -> None:
    """Every fuzzer's seeds under ``directory``."""
    import joblib
    import skops.io

    directory = Path(directory)
    seeds: dict[str, dict[str, bytes]] = {name: {} for name in ("xgboost_json", "xgboost_ubj", "lightgbm", "pickle",
                                                                "skops", "served_form", "json_rows")}
    seeds["json_rows"].update(predict_bodies())
    for name, booster in xgboost_models():
        seeds["xgboost_json"][f"{name}.json"] = bytes(booster.save_raw("json"))
        seeds["xgboost_ubj"][f"{name}.ubj"] = bytes(booster.save_raw("ubj"))
    for name, text in lightgbm_models():
        seeds["lightgbm"][f"{name}.txt"] = text
    for name, estimator in estimators():
        buffer = io.BytesIO()
        joblib.dump(estimator, buffer)
        seeds["pickle"][f"{name}.joblib"] = buffer.getvalue()
        seeds["pickle"][f"{name}.pkl"] = pickle.dumps(estimator, protocol=5)
        if name in ("tree", "forest", "logistic", "pipeline"):
            seeds["skops"][f"{name}.skops"] = skops.io.dumps(estimator)
    buffer = io.BytesIO()
    joblib.dump(dict(estimators())["forest"], buffer, compress=3)
    seeds["pickle"]["forest-zlib.joblib"] = buffer.getvalue()
    sources = {"xgboost": seeds["xgboost_json"]["softprob.json"], "lightgbm": seeds["lightgbm"]["categorical.txt"],
               "forest": seeds["pickle"]["forest.joblib"], "gradient": seeds["pickle"]["gradient.joblib"],
               "pipeline": seeds["pickle"]["pipeline.joblib"]}
    seeds["served_form"].update(_served_forms(sources, directory / "served_form_arrays"))
    for target, files in seeds.items():
        (directory / target).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (directory / target / name).write_bytes(data)


def _served_forms(sources: dict[str, bytes], arrays: Path) -> dict[str, bytes]:
    """The manifests of the forms the registry makes of ``sources``, their files renamed so that all of them lie
    in one directory (``arrays``), each manifest naming its own."""
    from registry.artifacts.served_forms import ServedForms
    from registry.serving.loader import prepare

    arrays.mkdir(parents=True, exist_ok=True)
    manifests, taken = {}, 0
    with tempfile.TemporaryDirectory() as root:
        forms = ServedForms(root, budget_bytes=2**30, key=b"fuzz")
        for number, (name, data) in enumerate(sources.items()):
            sha256 = f"{number:02d}" * 32
            forms.make(sha256, lambda data=data: prepare(data, None, 2**30))
            path = forms.path_for(sha256)
            manifest = json.loads(json.loads((path / "form.json").read_text())["manifest"])
            renamed = {}
            for file, entry in manifest["files"].items():
                renamed[file] = f"{taken}.npy"
                (arrays / renamed[file]).write_bytes((path / file).read_bytes())
                taken += 1
            manifest["files"] = {renamed[file]: entry for file, entry in manifest["files"].items()}
            manifest["values"] = _renamed(manifest["values"], renamed)
            manifest["artifact"] = "ab" * 32  # the fuzzer's one form (tests/fuzz/targets.py)
            manifests[f"{name}.json"] = json.dumps(manifest).encode()
    return manifests


def _renamed(value, names: dict[str, str]):
    if isinstance(value, list):
        return [_renamed(item, names) for item in value]
    if isinstance(value, dict):
        if list(value) == ["array"]:
            return {"array": names[value["array"]]}
        return {key: _renamed(item, names) for key, item in value.items()}
    return value


if __name__ == "__main__":
    write(Path(sys.argv[1]))
