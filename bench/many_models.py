"""Many models on one machine: hundreds of versions served by two workers within a memory budget.

``--versions`` logistic regressions (one model, a version each) are uploaded to a real gunicorn whose
workers hold ``--budget-mb`` of loaded models each; then, all by the pinned-version route, c=8:

- **hits**: 2,000 requests over 20 versions that fit in the budget, against 2,000 on one version
  (a single-model server's latency);
- **misses**: one request to each of 100 versions never asked for before (each loads);
- **Zipf traffic**: ``--requests`` with version ranks drawn from a Zipf law (s = 1.1) over all
  versions, so about ``--hot`` carry most of it: hit ratio and evictions from /metrics;
- **forest misses**: the first request to each of ``--forests`` forests of ``--forest-mb`` MB
  (read from the local store, checked, compiled);
- **memory**: the workers' total PSS, and what the loaded versions hold by the service's measure.

    .venv/bin/python -m bench.many_models

Figures only; nothing passes or fails on them.
"""
import argparse
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from bench import report
from bench.fleet import forest
from bench.harness import server
from bench.harness.models import artifact_bytes

HERE = Path(__file__).resolve().parent
TOKEN = "bench-many-models-token"
ROW = [0.1] * 10
CONCURRENCY = 8


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--hot", type=int, default=200)
    # About 200 of these logistic regressions (1.3 KB each loaded, as the service measures them); a forest
    # loaded past the budget stays until the next load, so the forest misses need no room of their own.
    parser.add_argument("--budget-mb", type=float, default=0.26)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--forests", type=int, default=6)
    parser.add_argument("--forest-mb", type=float, default=10.0)
    args = parser.parse_args()
    run = {"started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "options": vars(args),
           "machine": report.machine_facts()}
    with tempfile.TemporaryDirectory(prefix="bench-many-") as tmp:
        root = Path(tmp)
        with server.running(f"sqlite:///{root}/registry.db", root, TOKEN, workers=args.workers,
                            env={"MODEL_MEMORY_MB": args.budget_mb}) as (live,):
            run.update(measure(live, args))
    text = describe(run)
    print(text)
    report.save("many-models", run, text, HERE / "results", latest="many-models")


def logistic(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, len(ROW)))
    return LogisticRegression().fit(X, (X[:, seed % len(ROW)] > 0).astype(int))


def measure(live, args) -> dict:
    """Seed the versions, then time hits, misses, Zipf traffic and forest misses; read memory."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: _upload(live, "many", logistic(n)), range(1, args.versions + 1)))
    figures = {}
    hot = list(range(1, 21))
    _latencies(live, hot * 4)  # every worker has them loaded
    figures["hit_ms"] = _summary(_latencies(live, hot * 100))
    figures["single_ms"] = _summary(_latencies(live, [1] * 2000))
    before = _counters(live)
    cold = list(range(args.versions - 99, args.versions + 1))
    figures["miss_ms"] = _summary(_latencies(live, cold))
    pick = random.Random(0)
    weights = [1 / rank ** 1.1 for rank in range(1, args.versions + 1)]
    order = pick.sample(range(1, args.versions + 1), args.versions)  # which version has which rank
    traffic = [order[i] for i in pick.choices(range(args.versions), weights=weights, k=args.requests)]
    start = _counters(live)
    figures["zipf_ms"] = _summary(_latencies(live, traffic))
    end = _counters(live)
    hits = end["registry_model_cache_hits_total"] - start["registry_model_cache_hits_total"]
    misses = end["registry_model_cache_misses_total"] - start["registry_model_cache_misses_total"]
    figures["zipf_hit_ratio"] = hits / max(1, hits + misses)
    figures["zipf_evictions"] = (end["registry_model_cache_evictions_total"]
                                 - start["registry_model_cache_evictions_total"])
    figures["cold_misses_counted"] = (start["registry_model_cache_misses_total"]
                                      - before["registry_model_cache_misses_total"])
    figures["loaded_bytes"] = end["registry_model_cache_bytes"]
    figures["workers_pss_mb"] = _pss_mb(live)
    for n in range(args.forests):
        _upload(live, "forests", forest(args.forest_mb, seed=n))
    figures["forest_miss_ms"] = _summary([_timed(live, "forests", n)[0] for n in range(1, args.forests + 1)])
    return {"figures": figures}


def _upload(live, name: str, model) -> None:
    answer = requests.post(f"{live.url}/models/{name}/versions", headers=live.headers, timeout=300,
                           files={"artifact": ("m.joblib", artifact_bytes(model))})
    answer.raise_for_status()


def _timed(live, name: str, number: int, session=requests) -> tuple[float, int]:
    started = time.perf_counter()
    answer = session.post(f"{live.url}/models/{name}/{number}/predict", json={"instances": [ROW]}, timeout=120)
    return (time.perf_counter() - started) * 1000, answer.status_code


def _latencies(live, numbers: list[int]) -> list[float]:
    sessions = [requests.Session() for _ in range(CONCURRENCY)]
    chunks = [numbers[i::CONCURRENCY] for i in range(CONCURRENCY)]

    def run(i: int) -> list[float]:
        timed = [_timed(live, "many", n, sessions[i]) for n in chunks[i]]
        if any(status != 200 for _, status in timed):
            raise RuntimeError(f"failed answers: {[s for _, s in timed if s != 200][:5]}")
        return [ms for ms, _ in timed]

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return [ms for part in pool.map(run, range(CONCURRENCY)) for ms in part]


def _summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50": statistics.median(ordered), "p99": ordered[int(0.99 * (len(ordered) - 1))]}


def _counters(live) -> dict[str, float]:
    text = requests.get(f"{live.url}/metrics", timeout=30).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def _pss_mb(live) -> float:
    total = 0
    for worker in psutil.Process(live.process.pid).children():
        for line in Path(f"/proc/{worker.pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total / 1024


def describe(run: dict) -> str:
    """The figures as Markdown."""
    f, o = run["figures"], run["options"]
    ratio = f["hit_ms"]["p50"] / f["single_ms"]["p50"]
    rows = [
        ("hit (20 versions in the budget), p50 / p99", f"{f['hit_ms']['p50']:.2f} / {f['hit_ms']['p99']:.2f} ms"),
        ("one version only (a single-model server), p50 / p99",
         f"{f['single_ms']['p50']:.2f} / {f['single_ms']['p99']:.2f} ms"),
        ("hit ÷ single, p50", f"{ratio:.2f} (goal ≤ 1.1)"),
        ("miss (a logistic regression loaded), p50 / p99", f"{f['miss_ms']['p50']:.2f} / {f['miss_ms']['p99']:.2f} ms"),
        (f"miss on a {o['forest_mb']:g} MB forest, p50 / p99",
         f"{f['forest_miss_ms']['p50']:.1f} / {f['forest_miss_ms']['p99']:.1f} ms (goal p50 ≤ 30 ms)"),
        (f"Zipf traffic ({o['requests']:,} requests over {o['versions']} versions), p50 / p99",
         f"{f['zipf_ms']['p50']:.2f} / {f['zipf_ms']['p99']:.2f} ms"),
        ("Zipf hit ratio, evictions", f"{f['zipf_hit_ratio']:.3f}, {f['zipf_evictions']:.0f}"),
        ("loaded bytes (all workers), workers' total PSS",
         f"{f['loaded_bytes'] / 2**20:.1f} MB, {f['workers_pss_mb']:.0f} MB"),
    ]
    lines = [f"# Many models, {run['started_at']}", "",
             f"{o['versions']} versions, {o['workers']} workers, MODEL_MEMORY_MB={o['budget_mb']:g}, "
             f"c={CONCURRENCY}, pinned-version route.", "", "| figure | measured |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
