"""Scenario 4: the model alone, in process: the registry's predictor (made once at load) vs scikit-learn's predict.

For each bench model, on one row and on a 10,000-row batch: CPU time per call (best of ``ROUNDS``
rounds, so other work on the machine inflates it least), and whether the answers are identical.
"""
import time

import numpy as np

from bench import models
from registry.inference.predictors import predictor_for

ROUNDS = 5
BATCH_ROWS = 10_000
CALLS_PER_ROUND = {1: 200, BATCH_ROWS: 3}


def rows(count: int) -> np.ndarray:
    """``count`` rows like the training rows: each drawn at random from them, slightly moved (not the training set
    repeated in order, whose repeats the CPU's branch predictor learns in scikit-learn's forest walk)."""
    X, _ = models.training_data()
    rng = np.random.default_rng(0)
    return X[rng.integers(0, len(X), count)] + rng.normal(scale=0.01, size=(count, X.shape[1]))


def run(fitted: dict, say=print) -> list[dict]:
    """Per model and batch size: µs per call for the predictor and for scikit-learn, their ratio, identical?"""
    found = []
    for model, estimator in fitted.items():
        predictor = predictor_for(estimator)
        for count in CALLS_PER_ROUND:
            X = rows(count)
            ours, theirs = _cpu_per_call(predictor.predict, X), _cpu_per_call(estimator.predict, X)
            cell = {"model": model, "rows": count, "predictor": type(predictor).__name__,
                    "registry_us": round(ours, 1), "sklearn_us": round(theirs, 1),
                    "speedup": round(theirs / ours, 2), "identical": bool(np.array_equal(predictor.predict(X), estimator.predict(X)))}
            found.append(cell)
            say(f"  {model:8} rows={count:<6} registry {ours:10.1f} µs  scikit-learn {theirs:10.1f} µs  "
                f"({cell['speedup']:.2f}× faster, identical: {cell['identical']})")
    return found


def _cpu_per_call(predict, X: np.ndarray) -> float:
    calls = CALLS_PER_ROUND[len(X)]
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(calls):
            predict(X)
        best = min(best, (time.process_time() - started) / calls)
    return best * 1e6
