"""Many models on one machine: a thousand versions served by two workers within a memory budget.

``--versions`` versions of one model (every fourth a small random forest, the others logistic
regressions) are uploaded to a real gunicorn whose workers hold ``--budget-mb`` of loaded models
each; then, all by the pinned-version route, c=8:

- **hits**: 2,000 requests over 20 logistic versions that fit in the budget, against 2,000 on one
  version (a single-model server's latency);
- **misses**: one request to each of 100 versions never asked for before (each loads);
- **Zipf traffic**: ``--requests`` with version ranks drawn from a Zipf law (s = 1.1) over all
  versions, so about ``--hot`` carry most of it: hit ratio and evictions from /metrics;
- **forest misses**: the first request to each of ``--forests`` forests of ``--forest-mb`` MB, on
  the machine (read from the store, unpickled, compiled, its served form written) and again once
  the worker has let it go (the served form mapped: what every later load on the machine pays);
- **memory**: the workers' total PSS, and what the loaded versions hold by the service's measure;
  then, on servers of 1 and of ``--pss-workers`` workers, what the same ``--forests`` forests
  behind aliases (so every worker loads them) add to the workers' total PSS.

    .venv/bin/python -m bench.many_models

Figures only; nothing passes or fails on them.
"""
import argparse
import math
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
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from bench import report
from bench.fleet import forest
from bench.harness import server
from bench.harness.models import artifact_bytes
from registry.process import metric_files

HERE = Path(__file__).resolve().parent
TOKEN = "bench-many-models-token"
ROW = [0.1] * 10
FOREST_ROW = [0.2, 0.4, 0.6]  # bench.fleet's forests read three columns
CONCURRENCY = 8


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--hot", type=int, default=200)
    # Room for about 200 of these versions (a small forest holds 14 KB loaded, a logistic regression
    # 0.8 KB, as the service measures them); a large forest loaded past the budget stays until the next
    # load, so the forest misses need no room of their own.
    parser.add_argument("--budget-mb", type=float, default=0.8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pss-workers", type=int, default=4)
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
        run["figures"]["forests_pss_mb"] = {
            workers: _forests_pss_mb(root / f"pss-{workers}", workers, args) for workers in (1, args.pss_workers)}
    text = describe(run)
    print(text)
    report.save("many-models", run, text, HERE / "results", latest="many-models")


def logistic(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, len(ROW)))
    return LogisticRegression().fit(X, (X[:, seed % len(ROW)] > 0).astype(int))


def small_forest(seed: int) -> RandomForestClassifier:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, len(ROW)))
    return RandomForestClassifier(n_estimators=20, max_depth=8, random_state=seed).fit(X, X[:, seed % len(ROW)] > 0)


def version_model(number: int):
    """Version ``number``'s model: every fourth a small forest, the others logistic regressions."""
    return small_forest(number) if number % 4 == 0 else logistic(number)


def measure(live, args) -> dict:
    """Seed the versions, then time hits, misses, Zipf traffic and forest misses; read memory."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: _upload(live, "many", version_model(n)), range(1, args.versions + 1)))
    figures = {}
    hot = [n for n in range(1, 28) if n % 4][:20]
    _latencies(live, hot * 4)  # every worker has them loaded
    figures["hit_ms"] = _summary(_latencies(live, hot * 100))
    figures["single_ms"] = _summary(_latencies(live, [1] * 2000))
    before = _counters(live)
    cold = list(range(max(30, args.versions - 99), args.versions + 1))
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
    numbers = range(1, args.forests + 1)
    figures["forest_first_load_ms"] = _summary([_forest_timed(live, "forests", n) for n in numbers])
    # The same artifacts as versions of another model: new to every worker, so each request misses, and
    # loads from the served form the first load wrote.
    for n in range(args.forests):
        _upload(live, "same-forests", forest(args.forest_mb, seed=n))
    before = _counters(live)["registry_model_cache_misses_total"]
    figures["forest_miss_ms"] = _summary([_forest_timed(live, "same-forests", n) for n in numbers])
    figures["forest_misses_counted"] = _counters(live)["registry_model_cache_misses_total"] - before
    return {"figures": figures}


def _forest_timed(live, name: str, number: int) -> float:
    ms, status = _timed(live, name, number, row=FOREST_ROW)
    if status != 200:
        raise RuntimeError(f"forest version {number} answered {status}")
    return ms


def _forests_pss_mb(root: Path, workers: int, args) -> dict:
    """What ``args.forests`` aliased forests add to the total PSS of a server of ``workers`` workers (and its
    master) once every worker has loaded them and answered with them.

    The server first takes twelve small forests the same way, so that every worker has most likely
    handled an upload, a promotion and loads already: what a worker's first such requests cost
    whatever the model (code run once, pages it shared with the master written) is in neither figure.
    """
    root.mkdir()
    with server.running(f"sqlite:///{root}/registry.db", root, TOKEN, workers=workers) as (live,):
        pids = [w.pid for w in psutil.Process(live.process.pid).children()]
        _serve_aliased(live, pids, [f"warm-up-{n}" for n in range(12)], [forest(0.5, seed=100 + n) for n in range(12)])
        before = _pss_mb(live, with_master=True)
        names = [f"forest-{n}" for n in range(1, args.forests + 1)]
        _serve_aliased(live, pids, names, [forest(args.forest_mb, seed=n) for n in range(1, args.forests + 1)])
        after = _pss_mb(live, with_master=True)
    return {"before": before, "after": after, "added": after - before}


def _serve_aliased(live, pids: list[int], names: list[str], models: list) -> None:
    """Upload and promote each model, wait until every worker maps them all, and predict with each."""
    mapped = min(_forms_mapped(pid) for pid in pids)
    for name, model in zip(names, models):
        _upload(live, name, model)
        promoted = requests.post(f"{live.url}/models/{name}/versions/1/promote", json={}, headers=live.headers,
                                 timeout=300)
        promoted.raise_for_status()
    deadline = time.monotonic() + 300
    while min(_forms_mapped(pid) for pid in pids) < mapped + len(names):
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not all load the aliased forests within 300 s")
        time.sleep(0.5)
    session = requests.Session()
    for name in names * 10 * len(pids):
        answer = session.post(f"{live.url}/models/{name}/production/predict", json={"instances": [FOREST_ROW]},
                              timeout=60)
        answer.raise_for_status()


def _forms_mapped(pid: int) -> int:
    """How many served forms a process maps."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return len({line.rsplit("/", 2)[-2] for line in maps if "/forms/" in line and line.endswith(".npy")})


def _upload(live, name: str, model) -> None:
    answer = requests.post(f"{live.url}/models/{name}/versions", headers=live.headers, timeout=300,
                           files={"artifact": ("m.joblib", artifact_bytes(model))})
    answer.raise_for_status()


def _timed(live, name: str, number: int, session=requests, row: list = ROW) -> tuple[float, int]:
    started = time.perf_counter()
    answer = session.post(f"{live.url}/models/{name}/{number}/predict", json={"instances": [row]}, timeout=120)
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
    return {"n": len(ordered), "p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered), math.ceil(0.99 * len(ordered))) - 1]}


def _counters(live) -> dict[str, float]:
    """The service's unlabelled counters, once every worker has shared what it counted so far."""
    time.sleep(2 * metric_files.FLUSH_SECONDS)
    text = requests.get(f"{live.url}/metrics", timeout=30).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def _pss_mb(live, with_master: bool = False) -> float:
    """The workers' total PSS (and the master's: the pages a worker copies leave its share of them)."""
    total = 0
    master = psutil.Process(live.process.pid)
    for process in [master, *master.children()] if with_master else master.children():
        for line in Path(f"/proc/{process.pid}/smaps_rollup").read_text().splitlines():
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
        (f"first load of a {o['forest_mb']:g} MB forest on the machine (unpickled, compiled, form written), p50 / p99",
         f"{f['forest_first_load_ms']['p50']:.1f} / {f['forest_first_load_ms']['p99']:.1f} ms"),
        (f"miss on a {o['forest_mb']:g} MB forest from the served form, p50 / p99 ({f['forest_misses_counted']:.0f} misses)",
         f"{f['forest_miss_ms']['p50']:.1f} / {f['forest_miss_ms']['p99']:.1f} ms (goal p50 ≤ 30 ms)"),
        (f"Zipf traffic ({o['requests']:,} requests over {o['versions']} versions), p50 / p99",
         f"{f['zipf_ms']['p50']:.2f} / {f['zipf_ms']['p99']:.2f} ms"),
        ("Zipf hit ratio, evictions", f"{f['zipf_hit_ratio']:.3f}, {f['zipf_evictions']:.0f}"),
        ("loaded bytes (all workers), workers' total PSS",
         f"{f['loaded_bytes'] / 2**20:.1f} MB, {f['workers_pss_mb']:.0f} MB"),
    ]
    one, many = (f["forests_pss_mb"][w] for w in (1, o["pss_workers"]))
    rows += [
        (f"{o['forests']} aliased {o['forest_mb']:g} MB forests: PSS they add (master and workers), 1 worker",
         f"{one['added']:.1f} MB ({one['before']:.0f} → {one['after']:.0f} MB)"),
        (f"the same, {o['pss_workers']} workers",
         f"{many['added']:.1f} MB ({many['before']:.0f} → {many['after']:.0f} MB)"),
        (f"{o['pss_workers']} workers ÷ 1 worker, PSS added", f"{many['added'] / one['added']:.2f} (goal ≤ 1.3)"),
    ]
    lines = [f"# Many models, {run['started_at']}", "",
             f"{o['versions']} versions, {o['workers']} workers, MODEL_MEMORY_MB={o['budget_mb']:g}, "
             f"c={CONCURRENCY}, pinned-version route.", "", "| figure | measured |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
