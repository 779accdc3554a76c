"""Scenario 3: start-up, from launching gunicorn to the first answered prediction, with ten aliased models.

The registry gets ten versions (five logistic regressions, five 100-tree forests), each its own model
on ``production``; then, ``RUNS`` times, a fresh gunicorn is launched on that database and a predict
request on the alias route is sent every few milliseconds until one answers 200. The baseline is
launched the same way with the same ten models (joblib files) and asked the same. The registry's
workers warm every aliased model before their first request, so its first answer means all ten are
ready; the baseline loads all ten at import.
"""
import json
import statistics
import time
from pathlib import Path

import requests

from bench import models, servers
from bench.harness.traffic import move

COUNT = 10
RUNS = 3
POLL_SECONDS = 0.01
TIMEOUT_SECONDS = 120


def ten_models() -> list[tuple[str, object]]:
    """(kind, fitted estimator) for the ten models: logistic and forest alternately."""
    return [(kind, models.fit(kind, seed=i // 2)) for i, kind in enumerate(["logistic", "forest"] * (COUNT // 2))]


def run(root: Path, say=print) -> dict:
    """Median, min and max seconds to the first answer, for the registry and the baseline, and their ratio."""
    fitted = ten_models()
    env = _registry_with(root / "registry", fitted)
    paths = {f"m{i}": models.save(estimator, root / f"start-{i}.joblib") for i, (_, estimator) in enumerate(fitted)}
    body = json.dumps({"instances": models.training_data()[0][:1].round(6).tolist()})
    found = {"registry": [], "baseline": []}
    for _ in range(RUNS):  # interleaved, so drift in the machine's load hits both alike
        found["registry"].append(_first_answer(servers.spawn_registry(env, root), f"/models/start-{COUNT - 1}/production/predict", body))
        found["baseline"].append(_first_answer(servers.spawn_baseline(root, paths), f"/models/m{COUNT - 1}/predict", body))
        say(f"  start-up: registry {found['registry'][-1][0]:.2f} s ({found['registry'][-1][1]:.2f} CPU s), "
            f"baseline {found['baseline'][-1][0]:.2f} s ({found['baseline'][-1][1]:.2f} CPU s)")
    summary = {target: _summary(runs) for target, runs in found.items()}
    summary["ratio"] = round(summary["registry"]["median_s"] / summary["baseline"]["median_s"], 3)
    summary["cpu_ratio"] = round(summary["registry"]["median_cpu_s"] / summary["baseline"]["median_cpu_s"], 3)
    summary["models"] = f"{COUNT} aliased ({COUNT // 2} logistic, {COUNT // 2} forests of 100 trees)"
    return summary


def _registry_with(root: Path, fitted: list) -> dict:
    """A database and artifact root holding ``fitted`` as ten models on production; the env to serve it."""
    root.mkdir()
    live = servers.start_registry(root)
    try:
        for i, (_, estimator) in enumerate(fitted):
            name = f"start-{i}"
            move(live, "promote", name, models.register(live, name, estimator), reason="bench")
    finally:
        live.stop()
    return live.env


def _first_answer(server: servers.Server, path: str, body: str) -> tuple[float, float]:
    """Seconds from the launch of ``server`` to its first 200 on ``path``, and the CPU seconds its processes
    used by then (steadier than wall time on a busy machine); the server is stopped after."""
    started = time.monotonic()
    try:
        while time.monotonic() - started < TIMEOUT_SECONDS:
            if server.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{server.log_path.read_text()[-4000:]}")
            try:
                response = requests.post(server.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
                if response.status_code == 200:
                    return time.monotonic() - started, servers.cpu_seconds(server.process.pid)
            except requests.ConnectionError:
                pass
            time.sleep(POLL_SECONDS)
        raise RuntimeError(f"no answer in {TIMEOUT_SECONDS} s:\n{server.log_path.read_text()[-4000:]}")
    finally:
        server.stop()


def _summary(runs: list[tuple[float, float]]) -> dict:
    seconds, cpu = [wall for wall, _ in runs], [used for _, used in runs]
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3),
            "max_s": round(max(seconds), 3), "median_cpu_s": round(statistics.median(cpu), 3),
            "runs_s": [round(s, 3) for s in seconds], "runs_cpu_s": [round(s, 3) for s in cpu]}

