"""Scenario 3: promotes and rollbacks under c=8 load on the alias route; failures and p99 against steady state.

One wrk window without moves (steady state), then one window during which a thread makes ten
promote/rollback moves through the HTTP API, evenly spaced. wrk's Lua counts every status and the
``X-Model-Version`` of every answer, so the second window also shows the swaps took effect.
"""
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench import loadgen
from bench.harness.traffic import move
from bench.models import register

CONNECTIONS = 8
VERSIONS = 4
# The plan of tests/e2e/test_hot_swap.py: production starts at v1.
MOVES = [("promote", 2), ("promote", 3), ("rollback", None), ("promote", 4), ("rollback", None),
         ("rollback", None), ("promote", 3), ("promote", 2), ("rollback", None), ("promote", 4)]


def prepare(live, name: str, estimators: list) -> None:
    """Upload the versions of ``name`` and point production at v1."""
    for estimator in estimators:
        register(live, name, estimator)
    move(live, "promote", name, 1, reason="bench")


def run(live, name: str, body: Path, seconds: int, warmup: int, say: Callable[[str], None] = print) -> dict:
    """Steady window, then a window of the same length with the ten moves in it; both windows' figures."""
    url = f"{live.url}/models/{name}/production/predict"
    if warmup:
        loadgen.run(url, body, CONNECTIONS, warmup)
    steady = loadgen.run(url, body, CONNECTIONS, seconds)
    say(f"  steady     {steady.rps:8.1f} rps  p50 {steady.p50_ms:7.2f} ms  p99 {steady.p99_ms:7.2f} ms  failed {steady.failed}")

    pause = seconds / (len(MOVES) + 1)
    moves: list[dict] = []
    load = loadgen.Background(url, body, CONNECTIONS)
    try:
        mover = threading.Thread(target=_make_moves, args=(live, name, pause, moves), daemon=True)
        mover.start()
        mover.join()
    finally:
        during = load.stop()
    say(f"  swapping   {during.rps:8.1f} rps  p50 {during.p50_ms:7.2f} ms  p99 {during.p99_ms:7.2f} ms  "
        f"failed {during.failed}  versions answered {during.versions}")
    return {
        "model": name,
        "concurrency": CONNECTIONS,
        "steady": steady.to_dict(),
        "during_swaps": during.to_dict(),
        "moves": moves,
        "moves_ok": sum(1 for m in moves if m["ok"]),
        "failed_requests": during.failed,
        "p99_ratio": round(during.p99_ms / steady.p99_ms, 3) if steady.p99_ms else None,
    }


def _make_moves(live, name: str, pause: float, moves: list[dict]) -> None:
    """The plan, ``pause`` seconds before each move and after the last; each move's outcome and duration."""
    for action, version in MOVES:
        time.sleep(pause)
        started = time.monotonic()
        try:
            answer = move(live, action, name, version, reason="bench")
            outcome = {"ok": True, "version": answer["version"], "previous_version": answer["previous_version"]}
        except Exception as error:  # recorded, not raised: a failed move is a figure too
            outcome = {"ok": False, "error": str(error)[:300]}
        moves.append({"action": action, "asked": version, "seconds": round(time.monotonic() - started, 4), **outcome})
    time.sleep(pause)
