"""What a fresh worker's first upload and first load cost: ``python -m bench.first_request``.

Each run starts the registry (one worker, so its first request is that worker's) on a fresh SQLite
database, uploads a 100-tree forest and times the answer; then starts it again on the same database
and times the first prediction of that version by number, which the worker must load (no alias warms
it). Whatever scikit-learn, SciPy or pandas the worker imports on the way is in these figures, unless
gunicorn's master imported it before forking (gunicorn.conf.py). Figures only, never pass or fail.
"""
import json
import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench import models
from bench.harness import server as e2e
from bench.servers import ADMIN_TOKEN

RUNS = 3


def run(root: Path, say=print) -> dict:
    """Median and each run's seconds of the first upload and of the first load."""
    forest = models.save(models.fit("forest", seed=0), root / "forest.joblib")
    row = json.dumps({"instances": models.training_data()[0][:1].round(6).tolist()})
    found = {"first_upload_s": [], "first_load_s": []}
    for i in range(RUNS):
        here = root / f"run-{i}"  # a node cache of its own too: no served form made by an earlier run
        here.mkdir()
        env = e2e.service_env(f"sqlite:///{here}/registry.db", here / "artifacts", ADMIN_TOKEN)
        e2e.migrate(env)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        live = e2e.start(env, here, workers=1)
        try:
            started = time.perf_counter()
            with open(forest, "rb") as artifact:
                answer = requests.post(f"{live.url}/models/first/versions", files={"artifact": artifact}, headers=headers,
                                       timeout=120)
            found["first_upload_s"].append(time.perf_counter() - started)
            answer.raise_for_status()
        finally:
            live.stop()
        live = e2e.start(env, here, workers=1)
        try:
            started = time.perf_counter()
            answer = requests.post(f"{live.url}/models/first/1/predict", data=row,
                                   headers={"Content-Type": "application/json"}, timeout=120)
            found["first_load_s"].append(time.perf_counter() - started)
            answer.raise_for_status()
        finally:
            live.stop()
        say(f"  run {i + 1}: first upload {found['first_upload_s'][-1]:.2f} s, first load {found['first_load_s'][-1]:.2f} s")
    return {name: {"median_s": round(statistics.median(runs), 3), "runs_s": [round(r, 3) for r in runs]}
            for name, runs in found.items()}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="bench-first-request-") as directory:
        print(json.dumps(run(Path(directory)), indent=1))
