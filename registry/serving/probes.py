"""Checks of a dependency (the database, the artifact store) answered within a deadline, whatever the
dependency does.

A check runs on a loop of its own (``probe-<name>``, started and stopped by the app's lifecycle), never on
the thread that asks. Whoever asks while no check is
running starts one and waits for it at most ``deadline`` seconds, so that probes one after another
each see a fresh answer. Whoever asks while one is running does not wait: they get the last answer
while the running check is younger than the deadline (an unanswered one before the first answer),
and an unanswered one once it is older, for as long as it hangs; no second check is started beside
it. So however many probes arrive at once, at most one request thread per check and process waits,
at most ``deadline`` seconds.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from registry.process.loop import Loop

# How often a probe's loop looks for an asker unwoken (an asker wakes it at once).
IDLE_SECONDS = 60.0


@dataclass(frozen=True)
class ProbeAnswer:
    """What a check returned (or raised), or for how long the running check has gone unanswered."""

    value: object = None
    error: Exception | None = None
    waiting_seconds: float | None = None

    @property
    def unanswered(self) -> bool:
        """True when there is no answer to give: the running check is past the deadline, or is the first."""
        return self.waiting_seconds is not None


class Probe:
    """One check (``check()``), run in the background and answered within ``deadline`` seconds, once started."""

    def __init__(self, name: str, check: Callable[[], object], deadline: float):
        self.name = name
        self.check = check
        self.deadline = deadline
        self._changed = threading.Condition()
        self._started: float | None = None  # when the running check started (None: none runs)
        self._asked = self._answered = 0
        self._last = ProbeAnswer()
        self._loop = Loop(f"probe-{name}", IDLE_SECONDS, self._turn)

    def start(self) -> None:
        """Start this process's checking loop (the app's lifecycle does, in each worker)."""
        self._loop.start()

    def stop(self, timeout: float) -> bool:
        """Stop the loop; wait up to ``timeout`` seconds for a check in progress. Whether it has ended."""
        return self._loop.stop(timeout)

    def answer(self) -> ProbeAnswer:
        """A new check's answer, or the last one while another asker's check runs, or an unanswered one
        once the running check is older than ``deadline``; never waits longer than ``deadline``."""
        with self._changed:
            if self._started is not None:  # another asker's check is running
                running = time.monotonic() - self._started
                young = running < self.deadline and self._answered
                return self._last if young else ProbeAnswer(waiting_seconds=running)
            self._started, self._asked = time.monotonic(), self._asked + 1
            self._loop.wake()
            started, asked = self._started, self._asked
            while self._answered < asked:
                left = started + self.deadline - time.monotonic()
                if left <= 0:
                    return ProbeAnswer(waiting_seconds=time.monotonic() - started)
                self._changed.wait(left)
            return self._last

    def _turn(self) -> None:
        """Run the check an asker asked for, if one did."""
        with self._changed:
            if self._started is None:
                return
            asked = self._asked
        try:
            answer = ProbeAnswer(value=self.check())
        except Exception as exc:  # reported to the asker, who says what failed
            answer = ProbeAnswer(error=exc)
        with self._changed:
            self._last, self._answered, self._started = answer, asked, None
            self._changed.notify_all()
