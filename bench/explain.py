"""What an explanation costs: one row of a 100-tree, depth-10 random forest explained in process by the
compiled TreeSHAP (``registry.inference.tree_shap``) beside shap's own C TreeSHAP on the same model, and
the predict route's requests per second with ``"explain": true`` beside it without.

    .venv/bin/python -m bench.explain

Prints the p50 (and p90 and min) of each in-process explanation over ``--repeats`` calls (goal: ≤ 5 ms p50), and
the explain route's rps ÷ the predict route's (single row, alias route, c=8, goal ≥ 0.5); writes them to
bench/results/. Figures only; nothing passes or fails.
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
from sklearn.ensemble import RandomForestClassifier

from bench import models, predict, report, servers
from bench.harness.traffic import move
from registry.inference.fast_trees import compile_trees

HERE = Path(__file__).resolve().parent
GOALS = {"p50_ms": 5.0, "route_ratio": 0.5}


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts()}
    X, y = models.training_data()
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0).fit(X, y)
    run["in_process"] = in_process(forest, X, args.repeats)
    run["route"] = over_http(forest, X, args)
    text = describe(run)
    print(text)
    report.save("explain", run, text, HERE / "results", latest="explain")


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
            "nodes": int(len(compiled.nodes))}


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


def over_http(forest, X: np.ndarray, args) -> dict:
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
            version = models.register(registry, "forest", forest)
            move(registry, "promote", "forest", version)
            url = f"{registry.url}/models/forest/production/predict"
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
    return "\n".join([
        f"# Explanations, {run['started_at']}", "",
        f"One row of a 100-tree, depth-10 random forest ({local['nodes']:,} nodes, 8 features), "
        f"{o['repeats']} calls in process; largest difference from shap: {local['max_difference']:.1e}.", "",
        "| explainer | p50 | p90 | min (the machine's other load least in the way) | goal |",
        "| --- | --- | --- | --- | --- |",
        f"| registry (compiled TreeSHAP) | {local['registry_ms']['p50']:.3f} ms | {local['registry_ms']['p90']:.3f} ms "
        f"| {local['registry_ms']['min']:.3f} ms | p50 ≤ {GOALS['p50_ms']} ms |",
        f"| shap.TreeExplainer | {local['shap_ms']['p50']:.3f} ms | {local['shap_ms']['p90']:.3f} ms "
        f"| {local['shap_ms']['min']:.3f} ms | |", "",
        f"Single row, alias route, c={o['concurrency']}, {servers.WORKERS} workers, medians of {o['rounds']} "
        f"windows of {o['seconds']} s:", "",
        "| route | rps | ÷ predict | goal |", "| --- | --- | --- | --- |",
        f"| predict | {predict_rps:.0f} | 1.00 | |",
        f"| predict with explain | {explain_rps:.0f} | {explain_rps / predict_rps:.2f} | ≥ {GOALS['route_ratio']} |",
    ])


if __name__ == "__main__":
    main()
