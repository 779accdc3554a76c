"""Where one worker's time goes on a predict request: registry vs baseline and floor, in-process, CPU time per request.

``python -m bench.profile_predict [--model logistic] [--rows 1] [--requests 3000] [--top 30]``

Both apps run in this process behind Flask's test client (no sockets, no gunicorn), so the figures
are CPU time of the request path alone and hardly move with the machine's load. Metrics run in
Prometheus multiprocess mode, as under gunicorn.conf.py. Then cProfile, timed by this process's CPU
clock too, lists the registry's hot spots.
"""
import os
import tempfile

# As gunicorn.conf.py does before NumPy and prometheus_client are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-metrics-"))

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import joblib  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from api import create_app  # noqa: E402
from bench import baseline_app, models  # noqa: E402
from config import BASE_DIR, load_with  # noqa: E402
from registry.db import db  # noqa: E402

TOKEN = "bench-admin-token"
JSON = {"Content-Type": "application/json"}


def registry_client(root: Path, name: str, estimator):
    """A registry app on a migrated SQLite file with ``estimator`` as v1 on ``production``; its test client."""
    app = create_app(load_with({
        "DATABASE_URL": f"sqlite:///{root}/registry.db", "ARTIFACT_ROOT": str(root / "artifacts"),
        "ARTIFACT_CACHE_DIR": root / "artifact-cache",
        "ADMIN_TOKEN": TOKEN, "WATCH_ALIASES": False, "PROMETHEUS_MULTIPROC_DIR": os.environ["PROMETHEUS_MULTIPROC_DIR"],
    }))
    with app.app_context():
        upgrade(directory=str(BASE_DIR / "migrations"))
    client = app.test_client()
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    uploaded = client.post(f"/models/{name}/versions", data={"artifact": (io.BytesIO(buffer.getvalue()), "m.joblib")},
                           headers=auth)
    assert uploaded.status_code == 201, uploaded.get_data(as_text=True)
    promoted = client.post(f"/models/{name}/versions/1/promote", json={}, headers=auth)
    assert promoted.status_code == 200, promoted.get_data(as_text=True)
    return client


def cpu_per_request(targets: dict, body: bytes, count: int, rounds: int = 5) -> dict[str, float]:
    """Median over ``rounds`` interleaved rounds of mean CPU µs per request, for each (client, url) target."""
    for client, url in targets.values():
        for _ in range(50):
            assert client.post(url, data=body, headers=JSON).status_code == 200
    samples = {label: [] for label in targets}
    for _ in range(rounds):
        for label, (client, url) in targets.items():
            started = time.process_time()
            for _ in range(count // rounds):
                client.post(url, data=body, headers=JSON)
            samples[label].append((time.process_time() - started) / (count // rounds) * 1e6)
    return {label: sorted(values)[len(values) // 2] for label, values in samples.items()}


def main() -> None:
    """Time both apps, then profile the registry's alias route."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_predict", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=models.MODELS, default="logistic")
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--callees", default="_answer", help="also list what this function calls (default: the view)")
    args = parser.parse_args()

    X, _ = models.training_data()
    body = json.dumps({"instances": X[: args.rows].round(6).tolist()}).encode()
    estimator = models.fit(args.model)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        root = Path(tmp)
        registry = registry_client(root, f"bench-{args.model}", estimator)
        baseline = baseline_app.create_app({args.model: str(models.save(estimator, root / "m.joblib"))}).test_client()
        urls = {
            "registry alias": (registry, f"/models/bench-{args.model}/production/predict"),
            "registry pinned": (registry, f"/models/bench-{args.model}/1/predict"),
            "baseline": (baseline, f"/models/{args.model}/predict"),
            "floor": (baseline, "/floor/predict"),
        }
        costs = cpu_per_request(urls, body, args.requests)
        predict_only = _predict_only(estimator, X[: args.rows], args.requests)
        print(f"CPU µs per request, {args.model}, {args.rows} row(s), {args.requests} requests, Flask test client:")
        for label, cost in costs.items():
            print(f"  {label:16} {cost:8.0f} µs   ({cost / costs['baseline']:.2f}× baseline, "
                  f"{cost / costs['floor']:.2f}× the floor)")
        print(f"  {'estimator.predict':16} {predict_only:8.0f} µs   (the model alone, on a ready array)")

        profiler = cProfile.Profile(time.process_time)  # CPU time: a wall-clock profile charges the machine's load
        client, url = urls["registry alias"]
        profiler.enable()
        for _ in range(args.requests):
            client.post(url, data=body, headers=JSON)
        profiler.disable()
        for order in ("tottime", "cumulative"):
            print(f"\nregistry alias route, top {args.top} by {order}:")
            pstats.Stats(profiler).strip_dirs().sort_stats(order).print_stats(args.top)
        if args.callees:
            print(f"\nwhat {args.callees} calls (cumulative seconds over {args.requests} requests):")
            pstats.Stats(profiler).strip_dirs().sort_stats("cumulative").print_callees(args.callees)
        with registry.application.app_context():
            db.engine.dispose()


def _predict_only(estimator, rows, count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        estimator.predict(rows)
    return (time.process_time() - started) / count * 1e6


if __name__ == "__main__":
    main()
