"""What an explanation costs: one row of a 100-tree, depth-10 random forest explained in process by the
compiled TreeSHAP (``registry.inference.tree_shap``) beside shap's own C TreeSHAP on the same model, and
the predict route's requests per second with ``"explain": true`` beside it without; with ``--model
logistic`` the same for a logistic regression (linear SHAP beside shap's LinearExplainer), where what is
left of an explanation's cost is the route's Python, not arithmetic.

    .venv/bin/python -m bench.explain [--model forest|logistic] [--against OTHER/tree_walk.so] [--features N]

Prints the p50 (and p90 and min) of each in-process explanation over ``--repeats`` calls (goal: ≤ 5 ms p50), and
the explain route's rps ÷ the predict route's (single row, alias route, c=8, goal ≥ 0.5); writes them to
bench/results/; also the CPU time per row of the forest's TreeSHAP from its path copy and from the walk of its
records, turn about. With ``--against`` a library built from other source (another commit's ``tree_shap.c``) explains
the same forest's rows in the same run, turn about with this one: its CPU time per row beside ours. With
``--features`` the data has that many columns (``make_classification``, half of them informative) instead of the
registry's bench data's 8: wider paths take rules of more points. Figures only; nothing passes or fails.
"""
import argparse
import json
import statistics
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from bench import models, predict, report, servers
from bench.harness.traffic import move
from registry.inference.fast_trees import compile_trees
from registry.inference.linear_shap import linear_shap
from registry.inference.tree_shap import TreeExplainer
from registry.inference.tree_walk import RELEASING_GIL, load

HERE = Path(__file__).resolve().parent
GOALS = {"p50_ms": 5.0, "route_ratio": 0.5}


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--model", choices=("forest", "logistic"), default="forest")
    parser.add_argument("--against", help="another build of tree_walk.so to time beside this one")
    parser.add_argument("--features", type=int, help="columns of the data (default: the bench data's)")
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts()}
    X, y = models.training_data() if args.features is None else make_classification(
        n_samples=models.TRAINING_ROWS, n_features=args.features, n_informative=args.features // 2, random_state=0)
    if args.model == "forest":
        model = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0).fit(X, y)
        run["in_process"] = in_process(model, X, args.repeats)
        if args.against:
            run["in_process"]["cpu_us"] = against(model, X, args.repeats, Path(args.against))
    else:
        model = LogisticRegression(max_iter=1000).fit(X, y)
        run["in_process"] = in_process_linear(model, X, args.repeats)
    run["route"] = over_http(model, X, args)
    text = describe(run)
    print(text)
    name = "explain" if args.model == "forest" else f"explain-{args.model}"
    report.save(name, run, text, HERE / "results", latest=name)


def in_process(forest, X: np.ndarray, repeats: int) -> dict:
    """Milliseconds per single-row explanation, ours and shap's, after one unmeasured call each; and the
    largest difference between the two."""
    import shap

    compiled = compile_trees(forest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(forest, feature_perturbation="tree_path_dependent")
    rows = [X[i:i + 1] for i in range(repeats)]
    ours = _timed(lambda row: compiled.explain(row), rows)
    theirs = _timed(lambda row: explainer.shap_values(row, check_additivity=False), rows)
    difference = max(float(np.abs(compiled.explain(row)[1] - np.asarray(explainer.shap_values(row))).max())
                     for row in rows[:20])
    return {"registry_ms": ours, "shap_ms": theirs, "max_difference": difference,
            "nodes": int(len(compiled.nodes)), "walks_us": walks(compiled, X, repeats)}


def walks(compiled, X: np.ndarray, repeats: int, rounds: int = 5) -> dict:
    """Microseconds of CPU per single-row TreeSHAP call, the least of ``repeats`` rows × ``rounds`` turns, from the
    forest's path copy (where this CPU gets one) and from the walk of its records, on the same rows, turn about."""
    explainers = {name: TreeExplainer(nodes=compiled.nodes, roots=compiled.roots, value=compiled.value,
                                      cover=compiled.cover, n_features=compiled.n_features,
                                      n_outputs=compiled.value.shape[1], averaged=True, paths_max_bytes=budget)
                  for name, budget in (("paths", None), ("records", 0))}
    rows = [np.ascontiguousarray(X[i:i + 1], dtype=np.float32) for i in range(repeats)]
    least = dict.fromkeys(explainers, float("inf"))
    for _ in range(rounds):
        for name, explainer in explainers.items():
            for row in rows:
                started = time.process_time()
                explainer.explain(row)
                least[name] = min(least[name], time.process_time() - started)
    found = {name: round(seconds * 1e6, 1) for name, seconds in least.items()}
    found["path_copy"] = explainers["paths"]._paths is not None
    return found


def against(forest, X: np.ndarray, repeats: int, other: Path, rounds: int = 5) -> dict:
    """Microseconds of CPU (process time) per single-row TreeSHAP call, the least of ``repeats`` rows × ``rounds``
    turns, of this build's library and of ``other``'s, called alike on the same records, turn about."""
    compiled = compile_trees(forest)
    compiled.explain(X[:1])
    explainer = compiled._explainer
    libraries = {"this": RELEASING_GIL.shap, "other": load(other)[1].shap}
    rows = [np.ascontiguousarray(X[i:i + 1], dtype=np.float32) for i in range(repeats)]
    phi = np.zeros((1, explainer.n_features, explainer.n_outputs))
    least = dict.fromkeys(libraries, float("inf"))
    for _ in range(rounds):
        for name, shap in libraries.items():
            for row in rows:
                started = time.process_time()
                shap(*explainer._model, row.ctypes.data, 1, explainer.n_features, explainer.n_outputs,
                     phi.ctypes.data, 0.0)
                least[name] = min(least[name], time.process_time() - started)
    return {name: round(seconds * 1e6, 1) for name, seconds in least.items()}


def in_process_linear(model, X: np.ndarray, repeats: int) -> dict:
    """Milliseconds per single-row explanation of a logistic regression, ours (linear SHAP against the all-zeros
    row) and shap's LinearExplainer with the same background mean; and the largest difference between the two."""
    import shap

    zeros = np.zeros(X.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.LinearExplainer(model, (zeros, np.eye(len(zeros))), feature_perturbation="interventional")
    rows = [X[i:i + 1] for i in range(repeats)]

    def ours(row):
        return linear_shap(model.coef_, model.intercept_, rows=row, reference=zeros)[1]

    difference = max(float(np.abs(ours(row)[:, :, 0] - np.asarray(explainer.shap_values(row))).max())
                     for row in rows[:20])
    return {"registry_ms": _timed(ours, rows), "shap_ms": _timed(explainer.shap_values, rows),
            "max_difference": difference, "nodes": 0}


def _timed(call, rows: list) -> dict:
    call(rows[0])
    seconds = []
    for row in rows:
        started = time.perf_counter()
        call(row)
        seconds.append(time.perf_counter() - started)
    quantiles = statistics.quantiles(seconds, n=10)
    return {"p50": round(statistics.median(seconds) * 1000, 4), "p90": round(quantiles[8] * 1000, 4),
            "min": round(min(seconds) * 1000, 4)}


def over_http(model, X: np.ndarray, args) -> dict:
    """Requests per second of the predict route on one row, without and with ``explain``, in turns."""
    found = {"predict": [], "explain": []}
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp:
        root = Path(tmp)
        bodies = {}
        for name, extra in (("predict", {}), ("explain", {"explain": True})):
            bodies[name] = root / f"{name}.json"
            bodies[name].write_text(json.dumps({"instances": np.round(X[:1], 6).tolist(), **extra}))
        registry = servers.start_registry(root / "registry")
        try:
            version = models.register(registry, args.model, model, X)
            move(registry, "promote", args.model, version)
            url = f"{registry.url}/models/{args.model}/production/predict"
            for _ in range(args.rounds):
                for name, body in bodies.items():
                    figures = predict.measure(registry.process.pid, url, body, args.concurrency, args.seconds,
                                              warmup=1)
                    if figures["non_2xx"] or figures["socket_errors"]:
                        raise RuntimeError(f"{name}: {figures['non_2xx']} failed answers")
                    found[name].append(figures["rps"])
        finally:
            registry.stop()
    return found


def describe(run: dict) -> str:
    """The figures as Markdown."""
    local, route = run["in_process"], run["route"]
    predict_rps, explain_rps = statistics.median(route["predict"]), statistics.median(route["explain"])
    o = run["options"]
    forest = o.get("model", "forest") == "forest"
    features = o.get("features") or models.FEATURES
    what = (f"a 100-tree, depth-10 random forest ({local['nodes']:,} nodes, {features} features)" if forest
            else f"a logistic regression ({features} features)")
    ours, theirs = ("compiled TreeSHAP", "shap.TreeExplainer") if forest else ("linear SHAP", "shap.LinearExplainer")
    return "\n".join([
        f"# Explanations, {run['started_at']}", "",
        f"One row of {what}, "
        f"{o['repeats']} calls in process; largest difference from shap: {local['max_difference']:.1e}.", "",
        "| explainer | p50 | p90 | min (the machine's other load least in the way) | goal |",
        "| --- | --- | --- | --- | --- |",
        f"| registry ({ours}) | {local['registry_ms']['p50']:.3f} ms | {local['registry_ms']['p90']:.3f} ms "
        f"| {local['registry_ms']['min']:.3f} ms | p50 ≤ {GOALS['p50_ms']} ms |",
        f"| {theirs} | {local['shap_ms']['p50']:.3f} ms | {local['shap_ms']['p90']:.3f} ms "
        f"| {local['shap_ms']['min']:.3f} ms | |", "",
        *([f"CPU per row, least of {o['repeats']} rows × 5 turns: from the path copy "
           f"{local['walks_us']['paths']} µs{'' if local['walks_us']['path_copy'] else ' (none on this CPU)'}, "
           f"from the walk of the records {local['walks_us']['records']} µs.", ""] if "walks_us" in local else []),
        *([f"CPU per row, least of {o['repeats']} rows × 5 turns: this build {local['cpu_us']['this']} µs, "
           f"{o['against']} {local['cpu_us']['other']} µs "
           f"({local['cpu_us']['other'] / local['cpu_us']['this']:.2f}× as much).", ""] if "cpu_us" in local else []),
        f"Single row, alias route, c={o['concurrency']}, {servers.WORKERS} workers, medians of {o['rounds']} "
        f"windows of {o['seconds']} s:", "",
        "| route | rps | ÷ predict | goal |", "| --- | --- | --- | --- |",
        f"| predict | {predict_rps:.0f} | 1.00 | |",
        f"| predict with explain | {explain_rps:.0f} | {explain_rps / predict_rps:.2f} | ≥ {GOALS['route_ratio']} |",
    ])


if __name__ == "__main__":
    main()
