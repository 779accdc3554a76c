"""Scenarios 1 and 2: predict throughput and latency, registry vs the minimal baseline app, cell by cell.

Cells are interleaved (registry alias, registry pinned, baseline for the same model, rows and
concurrency, back to back) so that drift in the machine's load hits both sides alike.
"""
from collections.abc import Callable
from pathlib import Path

import requests

from bench import loadgen, servers

ALIAS = "production"


def targets(registry_url: str, baseline_url: str, name: str, model: str, version: int, rows: int) -> list[tuple[str, str]]:
    """(label, url) pairs measured for one model and batch size."""
    found = [("registry alias", f"{registry_url}/models/{name}/{ALIAS}/predict")]
    if model == "logistic" and rows == 1:
        found.append(("registry pinned", f"{registry_url}/models/{name}/{version}/predict"))
    found.append(("baseline", f"{baseline_url}/models/{model}/predict"))
    return found


def check_same_answers(urls: list[str], body: Path) -> None:
    """Every target answers 200 with the same predictions, so the cells compare like with like."""
    answers = {}
    for url in urls:
        response = requests.post(url, data=body.read_bytes(), headers={"Content-Type": "application/json"}, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:500]}")
        answers[url] = response.json()["predictions"]
    if len({str(a) for a in answers.values()}) != 1:
        raise RuntimeError(f"the targets disagree on the same body: {answers}")


def run(
    registry,
    baseline,
    served: dict[str, tuple[str, int]],
    bodies: dict[int, Path],
    concurrencies: list[int],
    seconds: int,
    warmup: int,
    say: Callable[[str], None] = print,
) -> list[dict]:
    """Every cell: {model, rows, concurrency, target, figures}; ``served`` maps model -> (registry name, version).

    ``registry`` and ``baseline`` are running servers (``.url``, ``.process``); besides wrk's figures each
    cell records the server's CPU time per request (master + workers), which other load on the machine
    hardly moves.
    """
    cells = []
    for model, (name, version) in served.items():
        for rows, body in bodies.items():
            pairs = targets(registry.url, baseline.url, name, model, version, rows)
            check_same_answers([url for _, url in pairs], body)
            for connections in concurrencies:
                for target, url in pairs:
                    server = registry if target.startswith("registry") else baseline
                    figures = measure(server.process.pid, url, body, connections, seconds, warmup)
                    cells.append({"model": model, "rows": rows, "concurrency": connections, "target": target,
                                  "url": url, **figures})
                    say(f"  {model:8} rows={rows:<3} c={connections}  {target:15}  {figures['rps']:8.1f} rps  "
                        f"p50 {figures['p50_ms']:7.2f} ms  p99 {figures['p99_ms']:7.2f} ms  "
                        f"cpu {figures['server_cpu_ms_per_request']:6.2f} ms/req  failed {figures['failed']}")
    return cells


def measure(pid: int, url: str, body: Path, connections: int, seconds: int, warmup: int) -> dict:
    """One cell: wrk's figures, the CPU the server (``pid`` and its workers) spent per request, its threads' waits
    per request (voluntary context switches, ``servers.waits``), and the busiest worker's share of the workers'
    CPU (gunicorn's workers keep the connections they accepted, so with keep-alive one worker may get most of
    them: 0.5 is an even split of two)."""
    if warmup:
        loadgen.run(url, body, connections, warmup)
    cpu_before, workers_before, waits_before = servers.cpu_seconds(pid), servers.worker_cpu_seconds(pid), servers.waits(pid)
    result = loadgen.run(url, body, connections, seconds)
    cpu_ms = (servers.cpu_seconds(pid) - cpu_before) * 1000 / max(result.requests, 1)
    waits = (servers.waits(pid) - waits_before) / max(result.requests, 1)
    worked = [used - workers_before.get(worker, 0.0) for worker, used in servers.worker_cpu_seconds(pid).items()]
    busiest = max(worked) / sum(worked) if sum(worked) > 0 else 1.0
    return {**result.to_dict(), "server_cpu_ms_per_request": round(cpu_ms, 3), "server_waits_per_request": round(waits, 2),
            "busiest_worker_share": round(busiest, 3)}


def ratios(cells: list[dict]) -> list[dict]:
    """Registry/baseline rps and p99 for every (model, rows, concurrency, registry route)."""
    baseline = {(c["model"], c["rows"], c["concurrency"]): c for c in cells if c["target"] == "baseline"}
    found = []
    for cell in cells:
        base = baseline.get((cell["model"], cell["rows"], cell["concurrency"]))
        if cell["target"] == "baseline" or base is None:
            continue
        found.append({
            "model": cell["model"], "rows": cell["rows"], "concurrency": cell["concurrency"], "target": cell["target"],
            "rps_ratio": _ratio(cell["rps"], base["rps"]),
            "p50_ratio": _ratio(cell["p50_ms"], base["p50_ms"]),
            "p99_ratio": _ratio(cell["p99_ms"], base["p99_ms"]),
            "cpu_ratio": _ratio(cell["server_cpu_ms_per_request"], base["server_cpu_ms_per_request"]),
        })
    return found


def _ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 3) if reference else None
