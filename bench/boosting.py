"""A boosted model alone, in process: the registry's compiled walk vs scikit-learn's own predict_proba.

``python -m bench.boosting`` fits a binary HistGradientBoostingClassifier of 100 trees of depth 6 (no
early stopping) on the bench's training problem grown to 20,000 rows, and times, side by side in one
run: one row, ``predict_proba`` of the registry's predictor (made once, as a worker makes it at load)
and of scikit-learn (with its default threads, and held to one); then 100,000 rows, with scikit-learn
held to one thread (threadpoolctl; the walker uses one). Wall time per call, the best of ``--rounds``
rounds (other work on the machine inflates it least), and whether the answers are identical bit for bit.
Where XGBoost is installed (a test dependency), the same for a 100-tree depth-6 ``binary:logistic``
booster trained on the same rows, saved as JSON and read by the registry: its probabilities against
``Booster.inplace_predict`` (XGBoost's fastest call; default threads, then one). Where LightGBM is installed
(a test dependency), the same for a 100-tree depth-6 ``binary`` LightGBM model (64 leaves at most) saved as
text and read by the registry, against ``Booster.predict`` (default threads, then ``num_threads=1``). For
both, where they install (``requirements-bench.txt``), ONNX Runtime and treelite on one thread beside
them, with the largest difference of their probabilities from the library's (bench/peer_runtimes.py).
Writes ``bench/results/boosting-<UTC time>.*``.
Figures only, never pass or fail.
"""
import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from bench import models, peer_runtimes, report
from registry.inference.predictors import predictor_for

HERE = Path(__file__).resolve().parent
TREES, DEPTH = 100, 6
TRAINING_ROWS = 20_000
BATCH_ROWS = 100_000
CALLS = {1: 2000, BATCH_ROWS: 2}


def fit() -> tuple[HistGradientBoostingClassifier, np.ndarray]:
    """The 100-tree depth-6 binary booster, and rows like its training rows."""
    X, y = make_classification(n_samples=TRAINING_ROWS, n_features=models.FEATURES, n_informative=5, random_state=0)
    model = HistGradientBoostingClassifier(max_iter=TREES, max_depth=DEPTH, max_leaf_nodes=None, early_stopping=False,
                                           random_state=0).fit(X, y)
    rows = np.resize(X, (BATCH_ROWS, X.shape[1]))
    rows += np.random.default_rng(0).normal(scale=0.01, size=rows.shape)
    return model, rows


def per_call_us(predict, X: np.ndarray, rounds: int) -> float:
    """Best of ``rounds`` rounds of the mean wall time per call, in µs."""
    calls = CALLS[len(X)]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            predict(X)
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e6


def run(rounds: int, say=print) -> dict:
    """One row and 100,000 rows: µs per call for the registry and scikit-learn, their ratio, identical?"""
    model, rows = fit()
    predictor = predictor_for(model)
    nodes = len(predictor.compiled.nodes)
    say(f"model: {len(model._predictors)} trees, depth ≤ {DEPTH}, {nodes:,} nodes; "
        f"predictor {type(predictor).__name__}")
    found = {"trees": len(model._predictors), "nodes": nodes, "cases": []}
    for count, threads in ((1, None), (1, 1), (BATCH_ROWS, 1)):
        X = rows[:count]
        with threadpool_limits(limits=threads):
            ours = per_call_us(predictor.predict_proba, X, rounds)
            theirs = per_call_us(model.predict_proba, X, rounds)
            identical = bool(np.array_equal(predictor.predict_proba(X), model.predict_proba(X))
                             and np.array_equal(predictor.predict(X), model.predict(X)))
        case = {"rows": count, "sklearn_threads": threads or "default", "registry_us": round(ours, 1),
                "sklearn_us": round(theirs, 1), "speedup": round(theirs / ours, 2), "identical": identical}
        found["cases"].append(case)
        say(f"  rows={count:<7} registry {ours:12.1f} µs  scikit-learn ({case['sklearn_threads']} threads) "
            f"{theirs:12.1f} µs  ({case['speedup']:.2f}× faster, identical: {identical})")
    return found


def run_xgboost(rounds: int, say=print) -> dict | None:
    """The XGBoost cases of ``run``, or None where XGBoost is not installed."""
    try:
        import xgboost
    except ImportError:
        return None
    from registry.artifacts.loading.xgboost_files import read_xgboost

    X, y = make_classification(n_samples=TRAINING_ROWS, n_features=models.FEATURES, n_informative=5, random_state=0)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": DEPTH, "eta": 0.1, "seed": 0},
                            xgboost.DMatrix(X, label=y), TREES)
    form, _ = read_xgboost(bytes(booster.save_raw("json")))
    rows = np.resize(X, (BATCH_ROWS, X.shape[1])) + np.random.default_rng(0).normal(scale=0.01, size=(BATCH_ROWS,
                                                                                                       X.shape[1]))
    say(f"XGBoost {xgboost.__version__}: {TREES} trees, depth ≤ {DEPTH}, {len(form.nodes):,} nodes")
    found = {"version": xgboost.__version__, "nodes": len(form.nodes), "cases": []}
    peers = peer_runtimes.xgboost_predictors(booster, X.shape[1])
    for count, threads in ((1, None), (1, 1), (BATCH_ROWS, 1)):
        X = rows[:count]
        booster.set_param({"nthread": threads or 0})
        ours = per_call_us(form.predict_proba, X, rounds)
        theirs = per_call_us(booster.inplace_predict, X, rounds)
        identical = bool(np.array_equal(form.predict_proba(X)[:, 1].astype(np.float32),
                                        booster.predict(xgboost.DMatrix(X))))
        case = {"rows": count, "xgboost_threads": threads or "default", "registry_us": round(ours, 1),
                "xgboost_us": round(theirs, 1), "speedup": round(theirs / ours, 2), "identical": identical}
        if threads == 1:
            case["peers"] = _peers(peers, X, booster.predict(xgboost.DMatrix(X)), rounds, say)
        found["cases"].append(case)
        say(f"  rows={count:<7} registry {ours:12.1f} µs  XGBoost ({case['xgboost_threads']} threads) "
            f"{theirs:12.1f} µs  ({case['speedup']:.2f}× faster, identical: {identical})")
    return found


def run_lightgbm(rounds: int, say=print) -> dict | None:
    """The LightGBM cases of ``run``, or None where LightGBM is not installed."""
    try:
        import lightgbm
    except ImportError:
        return None
    from registry.artifacts.loading.lightgbm_files import read_lightgbm

    X, y = make_classification(n_samples=TRAINING_ROWS, n_features=models.FEATURES, n_informative=5, random_state=0)
    params = {"objective": "binary", "max_depth": DEPTH, "num_leaves": 2**DEPTH, "learning_rate": 0.1, "seed": 0,
              "verbose": -1}
    booster = lightgbm.Booster(model_str=lightgbm.train(params, lightgbm.Dataset(X, y), TREES).model_to_string())
    form, _ = read_lightgbm(booster.model_to_string().encode())
    rows = np.resize(X, (BATCH_ROWS, X.shape[1])) + np.random.default_rng(0).normal(scale=0.01, size=(BATCH_ROWS,
                                                                                                       X.shape[1]))
    say(f"LightGBM {lightgbm.__version__}: {TREES} trees, depth ≤ {DEPTH}, {len(form.nodes):,} nodes")
    found = {"version": lightgbm.__version__, "nodes": len(form.nodes), "cases": []}
    peers = peer_runtimes.lightgbm_predictors(booster, X.shape[1])
    for count, threads in ((1, None), (1, 1), (BATCH_ROWS, 1)):
        X = rows[:count]
        options = {} if threads is None else {"num_threads": threads}
        ours = per_call_us(form.predict_proba, X, rounds)
        theirs = per_call_us(lambda batch: booster.predict(batch, **options), X, rounds)
        identical = bool(np.array_equal(form.predict_proba(X)[:, 1], booster.predict(X, **options)))
        case = {"rows": count, "lightgbm_threads": threads or "default", "registry_us": round(ours, 1),
                "lightgbm_us": round(theirs, 1), "speedup": round(theirs / ours, 2), "identical": identical}
        if threads == 1:
            case["peers"] = _peers(peers, X, booster.predict(X, **options), rounds, say)
        found["cases"].append(case)
        say(f"  rows={count:<7} registry {ours:12.1f} µs  LightGBM ({case['lightgbm_threads']} threads) "
            f"{theirs:12.1f} µs  ({case['speedup']:.2f}× faster, identical: {identical})")
    return found


def _peers(peers: dict, X: np.ndarray, library: np.ndarray, rounds: int, say) -> dict:
    """Each peer runtime's µs per call on ``X`` and its largest difference from the library's probabilities
    ``library``; or why it has none."""
    found = {}
    for name, predict in peers.items():
        if isinstance(predict, str):
            found[name] = {"absent": predict}
            continue
        found[name] = {"us": round(per_call_us(predict, X, rounds), 1),
                       "max_abs_diff": float(np.max(np.abs(predict(X) - library)))}
        say(f"    {name:<13} {found[name]['us']:12.1f} µs  (largest difference {found[name]['max_abs_diff']:.2g})")
    return found


def _peer_lines(cases: list[dict]) -> list[str]:
    """The peers' table (one thread each) under a library's table."""
    lines = ["", "Beside them, on one thread: ONNX Runtime (onnxmltools) and treelite (tl2cgen, gcc).", "",
             "| rows | runtime | µs | largest difference from the library |", "| --- | --- | --- | --- |"]
    for case in cases:
        for name, peer in case.get("peers", {}).items():
            if "absent" in peer:
                lines.append(f"| {case['rows']:,} | {name} | — | {peer['absent']} |")
            else:
                lines.append(f"| {case['rows']:,} | {name} | {peer['us']:,} | {peer['max_abs_diff']:.2g} |")
    return lines


def describe(result: dict) -> str:
    """The figures as Markdown."""
    lines = [f"# Boosted model in process, {result['started_at']}", "",
             f"HistGradientBoostingClassifier, binary, {result['figures']['trees']} trees of depth ≤ {DEPTH} "
             f"({result['figures']['nodes']:,} nodes), `predict_proba`; wall µs per call, best of "
             f"{result['options']['rounds']} rounds.", "",
             "| rows | registry µs | scikit-learn µs | scikit-learn threads | speed-up | identical |",
             "| --- | --- | --- | --- | --- | --- |"]
    for case in result["figures"]["cases"]:
        lines.append(f"| {case['rows']:,} | {case['registry_us']:,} | {case['sklearn_us']:,} | "
                     f"{case['sklearn_threads']} | {case['speedup']}× | {case['identical']} |")
    xgboost = result.get("xgboost")
    if xgboost:
        lines += ["", f"XGBoost {xgboost['version']}, `binary:logistic`, {TREES} trees of depth ≤ {DEPTH} "
                  f"({xgboost['nodes']:,} nodes) read from its JSON file: probabilities against "
                  "`Booster.inplace_predict`.", "",
                  "| rows | registry µs | XGBoost µs | XGBoost threads | speed-up | identical |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for case in xgboost["cases"]:
            lines.append(f"| {case['rows']:,} | {case['registry_us']:,} | {case['xgboost_us']:,} | "
                         f"{case['xgboost_threads']} | {case['speedup']}× | {case['identical']} |")
        lines += _peer_lines(xgboost["cases"])
    lightgbm = result.get("lightgbm")
    if lightgbm:
        lines += ["", f"LightGBM {lightgbm['version']}, `binary`, {TREES} trees of depth ≤ {DEPTH} "
                  f"({lightgbm['nodes']:,} nodes) read from its text file: probabilities against "
                  "`Booster.predict`.", "",
                  "| rows | registry µs | LightGBM µs | LightGBM threads | speed-up | identical |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for case in lightgbm["cases"]:
            lines.append(f"| {case['rows']:,} | {case['registry_us']:,} | {case['lightgbm_us']:,} | "
                         f"{case['lightgbm_threads']} | {case['speedup']}× | {case['identical']} |")
        lines += _peer_lines(lightgbm["cases"])
    return "\n".join(lines)


def main() -> None:
    """Parse the options, measure, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    args = parser.parse_args()
    result = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "options": {"rounds": args.rounds}, "machine": report.machine_facts()}
    result["figures"] = run(args.rounds)
    result["xgboost"] = run_xgboost(args.rounds)
    result["lightgbm"] = run_lightgbm(args.rounds)
    text = describe(result)
    print(text)
    report.save("boosting", result, text, args.out, latest="boosting")


if __name__ == "__main__":
    main()
