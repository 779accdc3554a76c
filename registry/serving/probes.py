"""Checks of a dependency (the database, the artifact store) answered within a deadline, whatever the
dependency does.

A check runs on a thread of its own, never on the thread that asks. Whoever asks while no check is
running starts one and waits for it at most ``deadline`` seconds, so that probes one after another
each see a fresh answer. Whoever asks while one is running does not wait: they get the last answer
while the running check is younger than the deadline (an unanswered one before the first answer),
and an unanswered one once it is older, for as long as it hangs; no second check is started beside
it. So however many probes arrive at once, at most one request thread per check and process waits,
at most ``deadline`` seconds.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


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
    """One check (``check()``), run in the background and answered within ``deadline`` seconds."""

    def __init__(self, name: str, check: Callable[[], object], deadline: float):
        self.name = name
        self.check = check
        self.deadline = deadline
        self._pid: int | None = None
        self._guard = threading.Lock()

    def answer(self) -> ProbeAnswer:
        """A new check's answer, or the last one while another asker's check runs, or an unanswered one
        once the running check is older than ``deadline``; never waits longer than ``deadline``."""
        self._start_in_this_process()
        with self._changed:
            if self._started is not None:  # another asker's check is running
                running = time.monotonic() - self._started
                young = running < self.deadline and self._answered
                return self._last if young else ProbeAnswer(waiting_seconds=running)
            self._started, self._asked = time.monotonic(), self._asked + 1
            self._changed.notify_all()
            started, asked = self._started, self._asked
            while self._answered < asked:
                left = started + self.deadline - time.monotonic()
                if left <= 0:
                    return ProbeAnswer(waiting_seconds=time.monotonic() - started)
                self._changed.wait(left)
            return self._last

    def _start_in_this_process(self) -> None:
        """The runner thread, started on first use in each process (a fork copies no thread)."""
        with self._guard:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._changed = threading.Condition()
            self._started: float | None = None
            self._asked = self._answered = 0
            self._last = ProbeAnswer()
            threading.Thread(target=self._run, args=(self._changed,), name=f"probe-{self.name}", daemon=True).start()

    def _run(self, changed: threading.Condition) -> None:
        while True:
            with changed:
                while self._started is None:
                    changed.wait()
                asked = self._asked
            try:
                answer = ProbeAnswer(value=self.check())
            except Exception as exc:  # reported to the asker, who says what failed
                answer = ProbeAnswer(error=exc)
            with changed:
                self._last, self._answered, self._started = answer, asked, None
                changed.notify_all()
