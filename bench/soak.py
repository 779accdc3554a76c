"""A soak: mixed prediction load with an admin action every few seconds, every answer checked, and
what grows measured: worker RSS and fds, every table's rows, the database's size, /metrics.

Each version of model ``soak`` answers ``3 × its number`` on the probe row, so every answer is checked
against the version that says it answered. Admin churn cycles through upload, promote, canary start,
canary end, rollback and archive. Samples are taken every ``--sample-seconds``; slopes are per hour,
by least squares (worker RSS over the second half, after warm-up).

    .venv/bin/python -m bench.soak                              # 10 minutes, this checkout
    .venv/bin/python -m bench.soak --minutes 60 --repo /tmp/before --label before

With ``--log-sample 1 --log-max-mb N --export`` it is the prediction log's soak: every answer logged
within an N MB bound, the rows pruning would delete first written to a lake directory as Parquet. It
adds the log's bytes and rows (from /metrics) to every sample, the p99 of the requests before the first
prune ÷ after it, and, at the end, whether the lake and the database together hold every logged row
once (ids read back from the Parquet files, the manifests and the table):

    .venv/bin/python -m bench.soak --minutes 60 --log-sample 1 --log-max-mb 32 --export

Figures only; nothing passes or fails on them.
"""
import argparse
import itertools
import json
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, inspect, select, table, text

from bench import report
from bench.harness.checkout import checkout_env, commit_of, migrate_checkout, start_checkout, stop_checkout
from bench.harness.models import PROBE_ROW, artifact_bytes, scaled_sum

HERE = Path(__file__).resolve().parent
TOKEN = "bench-soak-token"
MODEL = "soak"
SWAP_WINDOW_SECONDS = 1.0  # requests started this soon after a move count as "during a swap"
KEEP_READY = 4  # older versions than the newest few, not aliased, are archived


@dataclass
class Outcome:
    """What the load saw: latencies by start time, and what went wrong."""

    latencies: list[tuple[float, float]] = field(default_factory=list)  # (started, seconds)
    failed: int = 0
    wrong: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, started: float, seconds: float, ok: bool, right: bool) -> None:
        """Count one answer."""
        with self.lock:
            self.latencies.append((started, seconds))
            self.failed += not ok
            self.wrong += ok and not right


def main() -> None:
    """Parse the options, soak, print and write the figures to bench/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="checkout whose server is soaked")
    parser.add_argument("--label", default=None, help="name of the result (default: the checkout's commit)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4, help="prediction threads")
    parser.add_argument("--admin-seconds", type=float, default=5.0, help="time between admin actions")
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--log-sample", type=float, default=None, help="PREDICTION_LOG_SAMPLE (default: the server's)")
    parser.add_argument("--log-max-mb", type=float, default=None, help="PREDICTION_LOG_MAX_MB (default: the server's)")
    parser.add_argument("--export", action="store_true", help="PREDICTION_LOG_EXPORT to a lake directory, counted at the end")
    args = parser.parse_args()
    run = {
        "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "label": args.label or commit_of(args.repo), "repo": str(args.repo), "minutes": args.minutes,
        "workers": args.workers, "clients": args.clients, "admin_seconds": args.admin_seconds,
        "log_sample": args.log_sample, "log_max_mb": args.log_max_mb, "export": args.export,
        "machine": report.machine_facts(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        run.update(soak(args.repo.resolve(), Path(tmp), args))
    text = describe(run)
    print(text)
    report.save("soak", run, text, HERE / "results", latest=f"soak-{run['label']}")


def soak(repo: Path, root: Path, args) -> dict:
    """Start the server, seed it, run load and churn for the set time while sampling; the figures."""
    log_settings = {name: value for name, value in (("PREDICTION_LOG_SAMPLE", args.log_sample),
                                                     ("PREDICTION_LOG_MAX_MB", args.log_max_mb),
                                                     ("PREDICTION_LOG_EXPORT", root / "lake" if args.export else None))
                    if value is not None}
    env = checkout_env(repo, root, workers=args.workers, token=TOKEN, **log_settings)
    migrate_checkout(repo, env)
    server = start_checkout(repo, env, root / "gunicorn.log")
    engine = create_engine(env["DATABASE_URL"])
    try:
        admin = Admin(env["URL"])
        outcome, stop, samples = Outcome(), threading.Event(), []
        clients = [threading.Thread(target=_predict_loop, args=(env["URL"], i, outcome, stop), daemon=True)
                   for i in range(args.clients)]
        for client in clients:
            client.start()
        started = time.monotonic()
        next_sample = started
        while time.monotonic() - started < args.minutes * 60:
            if time.monotonic() >= next_sample:
                samples.append(_sample(server.pid, env["URL"], engine, root, time.monotonic() - started))
                next_sample += args.sample_seconds
            admin.act()
            time.sleep(args.admin_seconds)
        stop.set()
        for client in clients:
            client.join()
        samples.append(_sample(server.pid, env["URL"], engine, root, time.monotonic() - started))
        stop_checkout(server)  # its writers flush what is queued as they stop
        lake = _lake(engine, root / "lake") if args.export else None
    finally:
        engine.dispose()
        stop_checkout(server)
    return {"samples": samples, "slopes_per_hour": _slopes(samples), "actions": admin.done,
            "answers": _answers(outcome, admin.moves, _first_prune(samples, started)), "lake": lake}


class Admin:
    """The admin churn: one action per call, in a fixed cycle."""

    CYCLE = ("upload", "promote", "canary_start", "canary_end", "rollback", "archive")

    def __init__(self, url: str):
        self.url, self.session = url, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"
        self.newest = 0
        self.moves: list[float] = []
        self.done: dict[str, int] = {}
        self._cycle = itertools.cycle(self.CYCLE)
        self._upload()
        self._upload()
        self._call("post", f"/models/{MODEL}/versions/1/promote", json={})

    def act(self) -> None:
        """Do the next action of the cycle (a refused one, e.g. a rollback with nothing to undo, is fine)."""
        action = next(self._cycle)
        getattr(self, f"_{action}")()
        self.done[action] = self.done.get(action, 0) + 1

    def _upload(self) -> None:
        self.newest += 1
        files = {"artifact": ("m.joblib", artifact_bytes(scaled_sum(self.newest)))}
        self._call("post", f"/models/{MODEL}/versions", files=files)

    def _promote(self) -> None:
        self.moves.append(time.monotonic())
        self._call("post", f"/models/{MODEL}/versions/{self.newest}/promote", json={})

    def _canary_start(self) -> None:
        self._upload()
        self.moves.append(time.monotonic())
        self._call("put", f"/models/{MODEL}/aliases/production/rollout",
                   json={"canary": {"version": self.newest, "percent": 20}, "reason": "soak"})

    def _canary_end(self) -> None:
        self.moves.append(time.monotonic())
        self._call("delete", f"/models/{MODEL}/aliases/production/rollout", json={"reason": "soak"})

    def _rollback(self) -> None:
        self.moves.append(time.monotonic())
        self._call("post", f"/models/{MODEL}/rollback", json={})

    def _archive(self) -> None:
        listed = self._call("get", f"/models/{MODEL}/versions", params={"per_page": 500}).json()["items"]
        aliased = set(self._call("get", f"/models/{MODEL}/aliases").json().values())
        for version in sorted(v["version"] for v in listed)[:-KEEP_READY]:
            if version not in aliased:
                self._call("delete", f"/models/{MODEL}/versions/{version}")

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.session.request(method, f"{self.url}{path}", timeout=120, **kwargs)
        if response.status_code >= 500:
            raise RuntimeError(f"{method.upper()} {path}: {response.status_code} {response.text[:300]}")
        return response


def _predict_loop(url: str, index: int, outcome: Outcome, stop: threading.Event) -> None:
    """Predictions of every kind in turn: the alias, the latest version, V2, and a pinned version."""
    session = requests.Session()
    kinds = itertools.cycle(("alias", "latest", "v2", "pinned"))
    for _ in range(index):
        next(kinds)
    pinned = 1
    while not stop.is_set():
        kind, started = next(kinds), time.monotonic()
        try:
            ok, right, version = _one(session, url, kind, pinned)
        except requests.RequestException:
            ok, right, version = False, False, None
        pinned = version or pinned
        outcome.add(started, time.monotonic() - started, ok, right)


def _one(session: requests.Session, url: str, kind: str, pinned: int) -> tuple[bool, bool, int | None]:
    """One request: (answered 2xx, the answer matches the version that gave it, that version)."""
    if kind == "v2":
        body = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": PROBE_ROW}]}
        response = session.post(f"{url}/v2/models/{MODEL}/infer", json=body, timeout=30)
        if response.status_code != 200:
            return False, False, None
        answer = response.json()
        version, value = int(answer["model_version"]), answer["outputs"][0]["data"][0]
    else:
        ref = {"alias": "production", "latest": "latest", "pinned": str(pinned)}[kind]
        response = session.post(f"{url}/models/{MODEL}/{ref}/predict", json={"instances": [PROBE_ROW]}, timeout=30)
        if kind == "pinned" and response.status_code == 410:  # archived meanwhile: follow production again
            return True, True, None
        if response.status_code != 200:
            return False, False, None
        answer = response.json()
        version, value = answer["version"], answer["predictions"][0]
    return True, abs(value - 3.0 * version) < 1e-6, version


def _sample(master_pid: int, url: str, engine, root: Path, at: float) -> dict:
    """Worker RSS and fds, every table's rows, the database's size, and one /metrics scrape."""
    workers = psutil.Process(master_pid).children()
    started = time.perf_counter()
    scraped = requests.get(f"{url}/metrics", timeout=60).content
    scrape_ms = (time.perf_counter() - started) * 1000
    with engine.connect() as connection:
        names = [name for name in inspect(connection).get_table_names() if name != "alembic_version"]
        rows = {name: connection.execute(select(func.count()).select_from(table(name))).scalar_one() for name in names}
        if engine.dialect.name == "postgresql":
            size = connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        else:
            size = sum(path.stat().st_size for path in root.glob("registry.db*"))
    return {
        "at_s": round(at, 1),
        "worker_rss_mb": round(statistics.mean(w.memory_info().rss for w in workers) / 2**20, 2),
        "worker_fds": round(statistics.mean(w.num_fds() for w in workers), 1),
        "rows": rows, "database_bytes": size, "metrics_bytes": len(scraped), "scrape_ms": round(scrape_ms, 2),
        "log": _log_figures(scraped.decode()),
    }


LOG_FIGURES = {"registry_prediction_log_bytes": "bytes", "registry_prediction_log_rows": "rows",
               "registry_prediction_log_pruned_total": "pruned", "registry_prediction_log_written_total": "written",
               "registry_prediction_log_dropped_total": "dropped", "registry_prediction_log_exported_total": "exported"}


def _log_figures(scraped: str) -> dict:
    """The prediction log's figures in one scrape (summed over models, reasons and workers)."""
    figures = dict.fromkeys(LOG_FIGURES.values(), 0)
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            if sample.name in LOG_FIGURES:
                figures[LOG_FIGURES[sample.name]] += int(sample.value)
    return figures


def _first_prune(samples: list[dict], started: float) -> float | None:
    """When (monotonic) the first sample that saw a pruned row was taken: the log had reached its bound."""
    pruned = [s["at_s"] for s in samples if s["log"]["pruned"]]
    return started + pruned[0] if pruned else None


def _lake(engine, lake: Path) -> dict:
    """Every logged row once in the lake or the database? Ids read back from the Parquet files and the
    table, against the manifests' counts and the highest id handed out."""
    manifests = [json.loads(path.read_text()) for path in lake.glob("model=*/_manifest.json")]
    files = sorted(lake.glob("model=*/day=*/part-*.parquet"))
    lake_ids = [i for path in files for i in pq.read_table(path, columns=["id"]).column("id").to_pylist()]
    with engine.connect() as connection:
        database_ids = set(connection.execute(text("SELECT id FROM prediction_log")).scalars())
    both = set(lake_ids) | database_ids
    highest = max(both, default=0)
    return {"files": len(files), "lake_bytes": sum(path.stat().st_size for path in files),
            "lake_rows": len(lake_ids), "lake_rows_distinct": len(set(lake_ids)),
            "manifest_rows": sum(m["rows"] for m in manifests), "database_rows": len(database_ids),
            "in_lake_and_database": len(set(lake_ids) & database_ids), "rows_once_somewhere": len(both),
            "highest_id": highest, "ids_missing": highest - len(both)}


def _slopes(samples: list[dict]) -> dict:
    """Least-squares growth per hour of each sampled figure (worker RSS over the second half)."""
    def per_hour(points: list[tuple[float, float]]) -> float:
        if len(points) < 2:
            return 0.0
        return round(statistics.linear_regression([t for t, _ in points], [v for _, v in points]).slope * 3600, 3)

    half = samples[len(samples) // 2:]
    slopes = {
        "worker_rss_mb (second half)": per_hour([(s["at_s"], s["worker_rss_mb"]) for s in half]),
        "worker_fds": per_hour([(s["at_s"], s["worker_fds"]) for s in samples]),
        "database_bytes": per_hour([(s["at_s"], s["database_bytes"]) for s in samples]),
        "metrics_bytes": per_hour([(s["at_s"], s["metrics_bytes"]) for s in samples]),
        "scrape_ms": per_hour([(s["at_s"], s["scrape_ms"]) for s in samples]),
    }
    for name in samples[-1]["rows"]:
        slopes[f"rows: {name}"] = per_hour([(s["at_s"], s["rows"].get(name, 0)) for s in samples])
    return slopes


def _answers(outcome: Outcome, moves: list[float], pruning_from: float | None) -> dict:
    """Answers, failures, wrong answers, the p99 of requests started during a swap ÷ the others', and the
    p99 of the steady requests started once the log was pruned ÷ before (``pruning_from``)."""
    during, steady, before, after = [], [], [], []
    for started, seconds in outcome.latencies:
        near = any(0 <= started - moved <= SWAP_WINDOW_SECONDS for moved in moves)
        (during if near else steady).append(seconds)
        if not near and pruning_from is not None:
            (after if started >= pruning_from else before).append(seconds)
    return {"answers": len(outcome.latencies), "failed": outcome.failed, "wrong": outcome.wrong,
            "p99_ms_during_swaps": _p99_ms(during), "p99_ms_steady": _p99_ms(steady),
            "p99_ratio": round(_p99_ms(during) / _p99_ms(steady), 3) if during and steady else None,
            "p99_ms_before_pruning": _p99_ms(before), "p99_ms_pruning": _p99_ms(after),
            "p99_pruning_ratio": round(_p99_ms(after) / _p99_ms(before), 3) if before and after else None}


def _p99_ms(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2)


def describe(run: dict) -> str:
    """The figures as Markdown."""
    answers, first, last = run["answers"], run["samples"][0], run["samples"][-1]
    lines = [
        f"# Soak: {run['label']}",
        "",
        f"{run['minutes']:g} minutes, {run['workers']} workers, {run['clients']} prediction threads, an admin action "
        f"every {run['admin_seconds']:g} s ({', '.join(f'{k} {v}' for k, v in run['actions'].items())}).",
        "",
        f"Answers {answers['answers']}, failed {answers['failed']}, wrong {answers['wrong']}; p99 during swaps "
        f"{answers['p99_ms_during_swaps']} ms ÷ steady {answers['p99_ms_steady']} ms = {answers['p99_ratio']}.",
        "",
        "| figure | first sample | last sample | slope per hour |",
        "| --- | --- | --- | --- |",
    ]
    slopes = run["slopes_per_hour"]
    for key, label in (("worker_rss_mb", "worker_rss_mb (second half)"), ("worker_fds", "worker_fds"),
                       ("database_bytes", "database_bytes"), ("metrics_bytes", "metrics_bytes"),
                       ("scrape_ms", "scrape_ms")):
        lines.append(f"| {label} | {first[key]} | {last[key]} | {slopes[label]} |")
    for name, count in last["rows"].items():
        lines.append(f"| rows: {name} | {first['rows'].get(name, 0)} | {count} | {slopes[f'rows: {name}']} |")
    if answers["p99_pruning_ratio"] is not None:
        lines += ["", f"Steady p99 once the log was pruned {answers['p99_ms_pruning']} ms ÷ before "
                      f"{answers['p99_ms_before_pruning']} ms = {answers['p99_pruning_ratio']}."]
    lines += ["", "| at s | database MB | log MB (metrics) | log rows | written | pruned | exported | dropped |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for sample in run["samples"]:
        log_figures = sample["log"]
        lines.append(f"| {sample['at_s']:g} | {sample['database_bytes'] / 2**20:.1f} | {log_figures['bytes'] / 2**20:.1f} "
                     f"| {log_figures['rows']} | {log_figures['written']} | {log_figures['pruned']} "
                     f"| {log_figures['exported']} | {log_figures['dropped']} |")
    if run["lake"] is not None:
        lines += ["", "Lake: " + ", ".join(f"{key} {value}" for key, value in run["lake"].items()) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
