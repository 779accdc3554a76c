"""Open Inference Protocol infer vs our own predict route: the same model, the same server, the same run.

For 1 and 1,000 rows, four requests go to one registry (gunicorn, 2 workers, GRPC_BIND set): ``{"instances": ...}``
to ``/models/<name>/production/predict``, a V2 request to ``/v2/models/<name>/infer`` with its tensor in JSON
and in binary (tritonclient's own request body, binary output too), and the same V2 request over gRPC
(tritonclient's gRPC client, ``ModelInfer``); beside them, the same gRPC call to MLServer serving the same
model file with its own scikit-learn runtime (mlserver-sklearn, from requirements-bench.txt) where it
installs and starts, with ``parallel_workers: 0``: its parallel inference pool does not start with the
Python and asyncio here (its worker process stops at once: "There is no current event loop"), so
inference runs in its server process. One client sends
requests back to back over a kept-alive connection; the targets take turns in rounds so that the
noise of a shared machine falls on all of them alike. Per target: median and mean latency, and the
server's CPU time per request (the steadier figure), rows per second at the median, then the ratios
V2 ÷ predict, gRPC ÷ REST V2 and MLServer's gRPC ÷ ours. The same HTTP requests then go through Flask's test client in this
process, where CPU per request is the edge's own cost.

    .venv/bin/python -m bench.v2 [--requests 300] [--rounds 3]
"""
import argparse
import http.client
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import joblib
import numpy as np
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from flask_migrate import upgrade

from api import create_app
from bench import models, report, servers
from bench.harness.server import die_with_parent, free_port
from config import BASE_DIR, load_with
from registry.db import db

NAME = "v2bench"
ROW_COUNTS = (1, 1000)
HTTP_TARGETS = ("predict-json", "v2-json", "v2-binary")
TARGETS = (*HTTP_TARGETS, "v2-grpc")
MLSERVER = "mlserver-grpc"
MLSERVER_START_SECONDS = 120  # only a bound on waiting for it to say it is ready


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per target per round for 1 row (1,000 rows: a tenth)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", choices=models.MODELS, default="logistic")
    parser.add_argument("--out", type=Path, default=BASE_DIR / "bench" / "results")
    return parser.parse_args(argv)


def bodies(rows: np.ndarray) -> dict[str, tuple[str, bytes, dict]]:
    """Path, body and headers of each target for ``rows``."""
    v2_json = {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]}
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    binary, json_size = triton.InferenceServerClient.generate_request_body([tensor], outputs=[triton.InferRequestedOutput("predict")])
    return {
        "predict-json": (f"/models/{NAME}/production/predict", json.dumps({"instances": rows.tolist()}).encode(), {"Content-Type": "application/json"}),
        "v2-json": (f"/v2/models/{NAME}/infer", json.dumps(v2_json).encode(), {"Content-Type": "application/json"}),
        "v2-binary": (f"/v2/models/{NAME}/infer", binary, {"Inference-Header-Content-Length": str(json_size)}),
    }


def predictions(target: str, status: int, body: bytes, headers) -> list:
    """The predictions of an answer, whatever its protocol."""
    if status != 200:
        raise RuntimeError(f"{target} answered {status}: {body[:300]!r}")
    if target == "predict-json":
        return json.loads(body)["predictions"]
    length = headers.get("Inference-Header-Content-Length")
    result = triton.InferenceServerClient.parse_response_body(body, header_length=int(length) if length else None)
    return result.as_numpy("predict").tolist()


def send(conn: http.client.HTTPConnection, request: tuple[str, bytes, dict]) -> tuple[int, bytes, dict]:
    """POST one request; its status, body and headers."""
    path, body, headers = request
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read(), dict(response.getheaders())


def over_grpc(client: triton_grpc.InferenceServerClient, rows: np.ndarray):
    """One ModelInfer call of ``rows`` (FP64, as the REST V2 targets send them): a function that makes it and
    answers the predictions."""
    tensor = triton_grpc.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows)
    wanted = [triton_grpc.InferRequestedOutput("predict")]
    return lambda: client.infer(NAME, [tensor], outputs=wanted).as_numpy("predict").tolist()


def over_http_call(conn: http.client.HTTPConnection, target: str, request):
    """One HTTP request of ``target``: a function that sends it and answers the predictions."""
    return lambda: predictions(target, *send(conn, request))


def measure(call, pid: int, count: int) -> dict:
    """``count`` calls back to back: latencies and server CPU per request."""
    for _ in range(max(3, count // 20)):
        call()
    latencies = []
    cpu_before = servers.cpu_seconds(pid)
    for _ in range(count):
        started = time.perf_counter()
        call()  # raises on anything but an answer
        latencies.append(time.perf_counter() - started)
    cpu = (servers.cpu_seconds(pid) - cpu_before) / count
    return {"p50_ms": 1000 * statistics.median(latencies), "mean_ms": 1000 * statistics.fmean(latencies), "cpu_ms": 1000 * cpu}


@contextmanager
def mlserver(estimator, root: Path):
    """MLServer serving ``estimator`` as ``NAME`` with mlserver-sklearn: its process and gRPC address, or why
    it cannot (not installed, or it did not start: its log's last lines)."""
    command = Path(sys.executable).parent / "mlserver"
    # Looked up, not imported: its gRPC messages would clash with tritonclient's in protobuf's default pool.
    if importlib.util.find_spec("mlserver_sklearn") is None:
        yield None, "mlserver-sklearn is not installed (make bench installs it)"
        return
    root.mkdir()
    joblib.dump(estimator, root / "model.joblib")
    address = f"127.0.0.1:{free_port()}"
    (root / "model-settings.json").write_text(json.dumps({
        "name": NAME, "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}}))
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": free_port(), "grpc_port": int(address.rsplit(":", 1)[1]),
        "metrics_port": free_port(), "parallel_workers": 0}))
    log_path = root / "mlserver.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(command), "start", str(root)], cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=die_with_parent)
    client = triton_grpc.InferenceServerClient(address)
    try:
        deadline = time.monotonic() + MLSERVER_START_SECONDS
        while not _ready(client) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if _ready(client):
            yield process, address
        else:
            yield None, "MLServer did not start: " + " | ".join(log_path.read_text(errors="replace").splitlines()[-3:])
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=60)


def _ready(client: triton_grpc.InferenceServerClient) -> bool:
    try:
        return client.is_model_ready(NAME)
    except Exception:  # not listening yet
        return False


def over_http(live, grpc_address: str, args: argparse.Namespace, peer=None) -> list[dict]:
    """Every cell through gunicorn (HTTP, and gRPC at ``grpc_address``), and MLServer's gRPC where ``peer``
    (its process and address) is given: rows x target, the median of the rounds."""
    X, _ = models.training_data()
    netloc = urlsplit(live.url).netloc
    cells = []
    grpc_client = triton_grpc.InferenceServerClient(grpc_address)
    peer_client = triton_grpc.InferenceServerClient(peer[1]) if peer else None
    targets = (*TARGETS, MLSERVER) if peer else TARGETS
    for count in ROW_COUNTS:
        rows = np.round(X[:count], 6)
        requests_of = bodies(rows)
        conn = http.client.HTTPConnection(netloc, timeout=120)
        calls = {target: over_http_call(conn, target, requests_of[target]) for target in HTTP_TARGETS}
        calls["v2-grpc"] = over_grpc(grpc_client, rows)
        if peer:
            calls[MLSERVER] = over_grpc(peer_client, rows)
        answers = {target: np.ravel(call()).tolist() for target, call in calls.items()}  # MLServer's is a column
        if len({json.dumps(answer) for answer in answers.values()}) != 1:
            raise RuntimeError(f"the targets disagree on {count} rows: {answers}")
        per_round = max(10, args.requests if count == 1 else args.requests // 10)
        rounds = {target: [] for target in targets}
        for _ in range(args.rounds):
            for target in targets:
                pid = peer[0].pid if target == MLSERVER else live.process.pid
                rounds[target].append(measure(calls[target], pid, per_round))
        conn.close()
        for target, results in rounds.items():
            figures = {key: statistics.median(r[key] for r in results) for key in results[0]}
            body = requests_of[target][1] if target in requests_of else None
            cells.append({"mode": "gunicorn", "rows": count, "target": target, "requests": per_round * args.rounds,
                          "body_bytes": len(body) if body else None, "rows_per_s": 1000 * count / figures["p50_ms"], **figures})
    grpc_client.close()
    if peer_client is not None:
        peer_client.close()
    return cells


def in_process(estimator, args: argparse.Namespace) -> list[dict]:
    """The same requests through Flask's test client: this process's CPU per request, best of the rounds.

    No sockets and no other process: what is left is the edge's own work (parsing, checks, predict,
    encoding), and CPU time barely moves when other jobs share the machine.
    """
    X, _ = models.training_data()
    cells = []
    with tempfile.TemporaryDirectory(prefix="bench-v2-app-") as tmp:
        app = create_app(load_with({"DATABASE_URL": f"sqlite:///{tmp}/registry.db", "ARTIFACT_ROOT": f"{tmp}/artifacts",
                                    "ARTIFACT_CACHE_DIR": Path(tmp) / "artifact-cache", "ADMIN_TOKEN": servers.ADMIN_TOKEN,
                                    "WATCH_ALIASES": False, "PROMETHEUS_MULTIPROC_DIR": None}))
        with app.app_context():
            upgrade(directory=str(BASE_DIR / "migrations"))
        client = app.test_client()
        headers = {"Authorization": f"Bearer {servers.ADMIN_TOKEN}"}
        artifact = {"artifact": (io.BytesIO(_joblib_bytes(estimator)), "model.joblib")}
        client.post(f"/models/{NAME}/versions", data=artifact, headers=headers, content_type="multipart/form-data")
        client.post(f"/models/{NAME}/versions/1/promote", json={}, headers=headers)
        for count in ROW_COUNTS:
            per_round = max(20, args.requests if count == 1 else args.requests // 5)
            for target, (path, body, request_headers) in bodies(np.round(X[:count], 6)).items():
                post = lambda: client.post(path, data=body, headers=request_headers)  # noqa: E731
                if post().status_code != 200:
                    raise RuntimeError(f"{target} failed in process")
                best = min(_cpu_per_request(post, per_round) for _ in range(args.rounds))
                cells.append({"mode": "in-process", "rows": count, "target": target, "requests": per_round * args.rounds,
                              "body_bytes": len(body), "cpu_ms": 1000 * best})
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return cells


def _cpu_per_request(post, count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        post()
    return (time.process_time() - started) / count


def _joblib_bytes(estimator) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


def ratios(cells: list[dict], base_target: str = "predict-json") -> list[dict]:
    """Each other target ÷ ``base_target`` with the same rows, in the same mode."""
    base = {(cell["mode"], cell["rows"]): cell for cell in cells if cell["target"] == base_target}
    return [
        {"mode": cell["mode"], "rows": cell["rows"], "target": cell["target"], "base": base_target,
         **{f"{key}_ratio": cell[key] / base[cell["mode"], cell["rows"]][key]
            for key in ("p50_ms", "cpu_ms") if base[cell["mode"], cell["rows"]].get(key) and cell.get(key)}}
        for cell in cells if cell["target"] != base_target and (cell["mode"], cell["rows"]) in base
    ]


def markdown(result: dict) -> str:
    """The run as a Markdown report."""
    facts = result["machine"]
    lines = [
        "# V2 infer vs predict", "", f"`{result['command']}`", "",
        f"{facts['nproc']} CPUs ({facts['cpu']}), load {facts['loadavg_at_start']} at start, "
        f"{result['loadavg_at_end']} at end; commit {facts['git_commit']}; model {result['model']}, 2 gunicorn workers, "
        "one client, requests back to back. A shared machine: latencies are noisy, CPU per request less so; "
        "in-process CPU (Flask's test client, best of the rounds) least of all.", "",
        f"MLServer ({MLSERVER}: mlserver-sklearn, parallel_workers 0): {result['mlserver']}.", "",
        "| mode | rows | target | body bytes | p50 ms | mean ms | rows/s at p50 | CPU ms/req |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in result["cells"]:
        latency = f"{c['p50_ms']:.2f} | {c['mean_ms']:.2f} | {c['rows_per_s']:,.0f}" if "p50_ms" in c else " | | "
        lines.append(f"| {c['mode']} | {c['rows']} | {c['target']} | {c['body_bytes'] or ''} | {latency} | {c['cpu_ms']:.2f} |")
    lines += ["", "| mode | rows | target | ÷ | p50 | CPU |", "| --- | --- | --- | --- | --- | --- |"]
    for r in result["ratios"]:
        p50 = f"{r['p50_ms_ratio']:.2f}×" if "p50_ms_ratio" in r else ""
        lines.append(f"| {r['mode']} | {r['rows']} | {r['target']} | {r['base']} | {p50} | {r.get('cpu_ms_ratio', 0):.2f}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Start a registry, measure every cell, print the tables and write them to bench/results/."""
    args = parse_args(argv)
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    facts = report.machine_facts()
    estimator = models.fit(args.model)
    with tempfile.TemporaryDirectory(prefix="bench-v2-") as tmp:
        grpc_address = f"127.0.0.1:{free_port()}"
        live = servers.start_registry(Path(tmp), GRPC_BIND=grpc_address)
        try:
            models.register(live, NAME, estimator)
            promoted = requests.post(f"{live.url}/models/{NAME}/versions/1/promote", json={}, headers=live.headers, timeout=120)
            promoted.raise_for_status()
            with mlserver(estimator, Path(tmp) / "mlserver") as (process, address_or_why):
                peer = (process, address_or_why) if process is not None else None
                cells = over_http(live, grpc_address, args, peer)
        finally:
            live.stop()
    cells += in_process(estimator, args)
    result = {"command": report.command_line("bench.v2"), "started_at": started_at, "model": args.model, "machine": facts,
              "loadavg_at_end": list(os.getloadavg()), "cells": cells,
              "ratios": ratios(cells) + [r for r in ratios(cells, "v2-json") if r["target"] == "v2-grpc"]
              + [r for r in ratios(cells, "v2-grpc") if r["target"] == MLSERVER],
              "mlserver": "measured" if peer else address_or_why}
    text = markdown(result)
    print(text.replace("`", ""))
    report.save("v2", result, text, args.out, latest="v2-latest")


if __name__ == "__main__":
    main()
