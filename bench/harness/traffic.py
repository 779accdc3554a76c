"""Client-side load and the alias timeline it is checked against."""
import threading
import time
from dataclasses import dataclass

import requests

from bench.harness.models import PROBE_ROW

# Request and move times are taken on this process's clock; this absorbs scheduling noise.
CLOCK_SLACK_SECONDS = 0.05


@dataclass
class Answer:
    """One prediction request as the client saw it."""

    url: str
    started: float
    finished: float
    status: int
    version: int | None
    header_version: str | None
    prediction: float | None
    route: str | None = None


@dataclass
class Move:
    """One promote or rollback: when it was called, when it returned, where the alias went."""

    started: float
    returned: float
    version: int


class Load:
    """Threads that POST the probe row to ``urls`` (round robin per thread) until stopped."""

    def __init__(self, urls: list[str], threads: int):
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(urls[i % len(urls)],), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _loop(self, url: str) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = session.post(url, json={"instances": [PROBE_ROW]}, timeout=30)
            except requests.RequestException:
                self.answers.append(Answer(url, started, time.monotonic(), 0, None, None, None))
                continue
            body = response.json() if response.status_code == 200 else {}
            self.answers.append(
                Answer(
                    url,
                    started,
                    time.monotonic(),
                    response.status_code,
                    body.get("version"),
                    response.headers.get("X-Model-Version"),
                    (body.get("predictions") or [None])[0],
                    response.headers.get("X-Model-Route"),
                )
            )


def allowed_versions(answer: Answer, initial: int, moves: list[Move], window: float) -> set[int]:
    """Versions the alias pointed at some time during [start - window, finish] of a request.

    A move may take effect anywhere between its call and its return, so each target counts from
    its call until the next move returns.
    """
    lo, hi = answer.started - window - CLOCK_SLACK_SECONDS, answer.finished + CLOCK_SLACK_SECONDS
    spans = [(float("-inf"), moves[0].returned if moves else float("inf"), initial)]
    for i, move in enumerate(moves):
        until = moves[i + 1].returned if i + 1 < len(moves) else float("inf")
        spans.append((move.started, until, move.version))
    return {version for begin, end, version in spans if begin <= hi and end >= lo}


def move(live, action: str, name: str, version: int | None = None, reason: str = "e2e") -> dict:
    """Promote ``version`` or roll back ``production`` through the HTTP API; the response body."""
    if action == "promote":
        url = f"{live.url}/models/{name}/versions/{version}/promote"
    else:
        url = f"{live.url}/models/{name}/rollback"
    response = requests.post(url, json={"reason": reason}, headers=live.headers, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"{action} {name} {version or ''} failed: {response.status_code} {response.text}")
    return response.json()


def run_moves(live, name: str, plan: list[tuple[str, int | None]], pause: float) -> list[Move]:
    """Carry out ``plan`` with ``pause`` seconds before each move and after the last."""
    moves = []
    for action, version in plan:
        time.sleep(pause)
        started = time.monotonic()
        moved = move(live, action, name, version)
        moves.append(Move(started, time.monotonic(), moved["version"]))
    time.sleep(pause)
    return moves
