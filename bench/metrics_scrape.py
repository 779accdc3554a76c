"""/metrics after churn: the size and time of a scrape with many registered versions, few served.

``--models`` models of ``--versions`` versions each are uploaded to a real gunicorn (2 workers,
multiprocess metrics), every version answers a pinned prediction (each was served once), then
only each model's ``production`` version serves traffic. The scrape is measured then: bytes,
time per scrape (median and p90 of ``--scrapes``), and how many versions its series name.

    .venv/bin/python -m bench.metrics_scrape                                  # this checkout
    .venv/bin/python -m bench.metrics_scrape --repo /tmp/before --label before

Figures only; nothing passes or fails on them.
"""
import argparse
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench import report
from bench.harness.checkout import checkout_env, commit_of, migrate_checkout, start_checkout, stop_checkout
from bench.harness.models import PROBE_ROW, artifact_bytes, scaled_sum

HERE = Path(__file__).resolve().parent
TOKEN = "bench-metrics-token"
GOAL_BYTES, GOAL_MS = 50_000, 10.0


def main() -> None:
    """Parse the options, measure, print, and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="checkout whose server is measured")
    parser.add_argument("--label", default=None, help="name of the result (default: the checkout's commit)")
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--versions", type=int, default=50, help="versions per model")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--keep-scrape", type=Path, default=None, help="write the last scrape's text here")
    args = parser.parse_args()
    run = {
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "label": args.label or commit_of(args.repo), "repo": str(args.repo), "models": args.models,
        "versions_per_model": args.versions, "workers": args.workers, "machine": report.machine_facts(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        run["scrape"] = measure(args.repo.resolve(), Path(tmp), args)
    text = describe(run)
    print(text)
    report.save("metrics-scrape", run, text, HERE / "results", latest=f"metrics-scrape-{run['label']}")


def measure(repo: Path, root: Path, args) -> dict:
    """Seed and serve every version once, then serve production only, and scrape."""
    env = checkout_env(repo, root, workers=args.workers, token=TOKEN)
    migrate_checkout(repo, env)
    server = start_checkout(repo, env, root / "gunicorn.log")
    try:
        url, session = env["URL"], requests.Session()
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        _seed(session, url, args.models, args.versions)
        for model in range(args.models):
            for _ in range(4 * args.workers):
                _predict(session, f"{url}/models/m{model:03d}/production/predict")
        time.sleep(2)  # every worker's watcher has refreshed since the last change
        figures = _scrapes(session, f"{url}/metrics", args.scrapes, args.keep_scrape)
        figures["healthz_median_ms"] = _median_ms(session, f"{url}/healthz", args.scrapes)
        return figures
    finally:
        stop_checkout(server)


def describe(run: dict) -> str:
    """The figures as Markdown."""
    scrape = run["scrape"]
    registered = run["models"] * run["versions_per_model"]
    return "\n".join([
        f"# /metrics after churn: {run['label']}",
        "",
        f"{registered} versions registered ({run['models']} models × {run['versions_per_model']}), each served once "
        f"(a pinned prediction); now {run['models']} served (production of each model); {run['workers']} workers.",
        "",
        "| figure | goal | measured |",
        "| --- | --- | --- |",
        f"| scrape size | ≤ {GOAL_BYTES // 1000} KB | {scrape['bytes'] / 1000:.1f} KB |",
        f"| scrape time, median (p90) | ≤ {GOAL_MS:g} ms | {scrape['median_ms']:.1f} ms ({scrape['p90_ms']:.1f} ms) |",
        f"| versions named by a series | | {scrape['versions_named']} |",
        f"| lines | | {scrape['lines']} |",
        f"| `GET /healthz`, median (the framework's part of a request) | | {scrape['healthz_median_ms']:.1f} ms |",
    ])


def _seed(session: requests.Session, url: str, models: int, versions: int) -> None:
    for model in range(models):
        name = f"m{model:03d}"
        for version in range(1, versions + 1):
            artifact = artifact_bytes(scaled_sum(model * 1000 + version))
            session.post(f"{url}/models/{name}/versions", files={"artifact": ("m.joblib", artifact)},
                         timeout=60).raise_for_status()
            _predict(session, f"{url}/models/{name}/{version}/predict")
        session.post(f"{url}/models/{name}/versions/{versions}/promote", json={}, timeout=60).raise_for_status()


def _predict(session: requests.Session, url: str) -> None:
    session.post(url, json={"instances": [PROBE_ROW]}, timeout=60).raise_for_status()


def _median_ms(session: requests.Session, url: str, count: int) -> float:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        session.get(url, timeout=60).raise_for_status()
        took.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(took), 2)


def _scrapes(session: requests.Session, url: str, count: int, keep: Path | None) -> dict:
    took, text = [], ""
    for _ in range(count):
        started = time.perf_counter()
        text = session.get(url, timeout=60).text
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    if keep is not None:
        keep.write_text(text)
    named = {
        (sample.labels["model"], sample.labels["version"])
        for family in text_string_to_metric_families(text) for sample in family.samples
        if "model" in sample.labels and "version" in sample.labels
    }
    return {"bytes": len(text.encode()), "lines": text.count("\n"), "median_ms": round(statistics.median(took), 2),
            "p90_ms": round(took[int(0.9 * (count - 1))], 2), "versions_named": len(named)}


if __name__ == "__main__":
    main()
