"""Admission: how much prediction work one process takes on at once, so that one flooded model cannot
take every thread of a worker and the requests beyond its share are refused at once, not queued.

Each process counts the predictions it is computing, per model and in all. A prediction starts only
while its model has fewer than ``per_model`` in flight and the process fewer than ``per_worker``;
otherwise it is refused before any of it runs. The model's bound keeps threads for the others, so it
holds only while the process holds another model loaded (``serves_others``) or another model was asked
of it within :data:`OTHERS_ACTIVE_SECONDS`: a worker that serves one model lends it every thread, and a
burst of it is queued, not refused.
Refused: :class:`ModelBusy` (the edge answers 429) or
:class:`WorkerBusy` (503), each with the seconds to wait before trying again. Only one request of a
model at its bound may wait for a slot, and only ``wait_seconds`` (a few ms: long enough for a fast
model's burst to pass, short enough that a flooded slow model's excess is refused at once): a waiting
request holds one of the worker's few threads, which is what the bound is there to keep free. When the
process is full, one request of a model it serves under that model's bound waits the same way (a name it
does not hold loaded is refused at once), and the next slot given back is its (no other model's request
takes it first): a flooded model holding its bound leaves the others one slot, and a quiet model's second
request at once waits the milliseconds its first takes instead of being refused. A caller's
:class:`Deadline` that passed before its prediction could start (time spent in the server's
queue included) is refused the same way (:class:`DeadlinePassed`, 503), without computing.

The same counts say when the work that follows answers is shed: a shadow run while the process has
half its bound in flight, a canary's mirror run (the agreement gate's) only when every other slot is
taken; the caller's own answer is never shed.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from registry.errors import DeadlinePassed, ModelBusy, WorkerBusy
from registry.telemetry import PREDICTIONS_IN_FLIGHT

# What a refusal asks the caller to wait, in whole seconds (Retry-After): a slot frees within one
# prediction's time, so the shortest wait the header can say.
RETRY_AFTER_SECONDS = 1
# A model's bound holds while another model was asked of this process this recently (monotonic seconds).
OTHERS_ACTIVE_SECONDS = 10.0


@dataclass(frozen=True)
class AdmissionBounds:
    """The predictions one process computes at once, per model and in all, and from how many in flight
    it sheds shadow runs and mirror runs."""

    per_model: int
    per_worker: int
    shed_shadows_at: int
    shed_mirrors_at: int
    wait_seconds: float = 0.0  # how long one request of a model at its bound may wait for a slot

    @classmethod
    def of(cls, *, per_model: int, per_worker: int, wait_seconds: float = 0.0) -> AdmissionBounds:
        """Bounds of at least 1 each, no model's above the process's; shadows shed from half full, mirrors
        from full but one (a run is offered once its own answer has given its slot back)."""
        per_worker = max(1, per_worker)
        shadows = math.ceil(per_worker / 2)
        return cls(min(max(1, per_model), per_worker), per_worker, shadows, max(shadows, per_worker - 1),
                   max(0.0, wait_seconds))


@dataclass(frozen=True)
class Deadline:
    """A caller's deadline: ``seconds`` after the request ``arrived`` (``time.monotonic()``) at the process."""

    arrived: float
    seconds: float

    @property
    def at(self) -> float:
        """When it passes, on ``time.monotonic()``'s clock."""
        return self.arrived + self.seconds


class Admission:
    """The predictions in flight in one process, per model and in all, held to ``bounds``."""

    def __init__(self, bounds: AdmissionBounds, serves_others: Callable[[str], bool] = lambda model: False,
                 holds: Callable[[str], bool] = lambda model: True):
        self.bounds = bounds
        self.serves_others = serves_others  # whether the process holds a model but the one named loaded
        self.holds = holds  # whether the process holds the model named loaded: only such a model is owed a slot
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._by_model: dict[str, int] = {}  # only models with a prediction in flight: bounded by the threads
        self._waiting: set[str] = set()  # models one of whose requests waits for a slot
        self._owed: list[str] = []  # of those, the ones under their bound in a full process, first come first: the
        # next slots given back are theirs, in that order
        self._asked: dict[str, float] = {}  # model -> when it was last asked (bounded by the registry's models)
        self._total = 0
        # Below this many predictions in flight in all, none is refused: no model can hold its share yet.
        self._never_refused = min(bounds.per_model, bounds.per_worker)

    def admitted(self, model: str, deadline: Deadline | None = None) -> Slot:
        """A slot of ``model``, taken now and given back when the ``with`` block it opens ends (``with
        admission.admitted(model): ...``); refuse (raise :class:`DeadlinePassed`, :class:`ModelBusy` or
        :class:`WorkerBusy`) when the deadline passed or no slot is free (after a short wait for one, when
        no other request of the model waits already)."""
        if deadline is not None:
            _check(deadline)
        self._take(model, deadline)
        return Slot(self, model)

    def check(self, model: str, deadline: Deadline | None = None) -> None:
        """Raise the refusal :meth:`admitted` would raise, without taking a slot: an edge asks before it parses
        a body, so that a refusal costs no parsing (the slot is taken, and checked again, later). The one
        request of a model at its bound that may wait for a slot waits here, before its body is parsed, and is
        refused here when none frees: a flood's waiter is refused every ``wait_seconds``, and parsing each one's
        body first took its worker's GIL for milliseconds (a 2,000-row body: 3 ms) only to refuse it."""
        if deadline is not None:
            _check(deadline)
        if self.quiet:
            return
        with self._lock:
            self._wait_or_refuse(model, deadline)

    def at_bound(self, model: str) -> bool:
        """Whether a prediction of ``model`` asked now would find the model holding its bound (and wait for a slot,
        or be refused): the server then takes the model's requests after the others waiting for a thread."""
        if self.quiet:
            return False
        with self._lock:
            return self._over_share(model)

    @property
    def quiet(self) -> bool:
        """Whether so few predictions are in flight that none would be refused now (read without the lock:
        a slot is checked again when taken)."""
        return self._total < self._never_refused

    @property
    def in_flight(self) -> int:
        """Predictions this process computes now."""
        return self._total

    def sheds(self, *, mirror: bool) -> bool:
        """Whether a run that follows an answer is skipped now: a shadow run from ``shed_shadows_at``
        predictions in flight, a canary's mirror run from ``shed_mirrors_at``."""
        return self._total >= (self.bounds.shed_mirrors_at if mirror else self.bounds.shed_shadows_at)

    def _take(self, model: str, deadline: Deadline | None) -> None:
        with self._lock:
            self._asked[model] = time.monotonic()
            if not self.quiet:  # while it is, no model holds its share nor the process its bound
                self._wait_or_refuse(model, deadline)
            self._by_model[model] = self._by_model.get(model, 0) + 1
            self._total += 1
        PREDICTIONS_IN_FLIGHT.inc()

    def _wait_or_refuse(self, model: str, deadline: Deadline | None) -> None:
        """Return once ``model`` has a slot free, after a wait for one where it may wait; refuse when none
        is (the caller holds the lock)."""
        if self._slot_free(model):
            return
        over = self._over_share(model)
        # A name this process does not serve (made up, or not loaded yet) is owed nothing: a flood of such names
        # would otherwise hold a thread each for ADMISSION_WAIT_MS, ahead of the models it serves.
        may_wait = self._may_wait(model) and (over or self.holds(model))
        if may_wait and self._wait_for_slot(model, deadline, owed=not over):
            return
        self._refuse_when_full(model)

    def _slot_free(self, model: str) -> bool:
        """Whether ``model`` may take a slot now: it is under its bound, and the process has one free that
        is not owed to a model's request that waits before it (the caller holds the lock)."""
        if self._over_share(model):
            return False
        return self._total + self._owed_before(model) < self.bounds.per_worker

    def _owed_before(self, model: str) -> int:
        """How many slots are owed to requests that wait before ``model``'s (all of them, when it is not owed one)."""
        return self._owed.index(model) if model in self._owed else len(self._owed)

    def _may_wait(self, model: str) -> bool:
        """Whether a request of ``model`` may wait for a slot: waits are on, and none of the model's waits."""
        return self.bounds.wait_seconds > 0 and model not in self._waiting

    def _wait_for_slot(self, model: str, deadline: Deadline | None, *, owed: bool) -> bool:
        """Wait (the lock held, released meanwhile) until ``model`` has a slot free, ``wait_seconds`` at most
        and never past ``deadline``; then the deadline is checked again. Whether a slot is free (the caller
        takes it before it lets go of the lock). ``owed``: the model is under its bound and the process full,
        so the next slot given back is kept for it."""
        until = time.monotonic() + self.bounds.wait_seconds
        if deadline is not None:
            until = min(until, deadline.at)
        self._waiting.add(model)
        if owed:
            self._owed.append(model)
        try:
            found = self._freed.wait_for(lambda: self._slot_free(model), timeout=max(0.0, until - time.monotonic()))
        finally:
            self._waiting.discard(model)
            if owed:
                self._owed.remove(model)
                self._freed.notify_all()  # a slot it leaves untaken goes to the next one waiting
        if deadline is not None and found:
            _check(deadline)
        return found

    def _over_share(self, model: str) -> bool:
        """Whether ``model`` holds its bound's worth of slots while another model was asked lately (the
        caller holds the lock)."""
        if self._by_model.get(model, 0) < self.bounds.per_model:
            return False
        lately = time.monotonic() - OTHERS_ACTIVE_SECONDS
        return any(at >= lately for name, at in self._asked.items() if name != model) or self.serves_others(model)

    def _refuse_when_full(self, model: str) -> None:
        """Raise :class:`ModelBusy` or :class:`WorkerBusy` when ``model`` or the process has no slot free
        (the caller holds the lock)."""
        bounds, held = self.bounds, self._by_model.get(model, 0)
        if self._over_share(model):
            raise ModelBusy(
                f"model {model!r} has {held} predictions in flight in this worker, as many as one model may "
                f"while others are asked (MAX_IN_FLIGHT_PER_MODEL={bounds.per_model}); retry after the Retry-After seconds, send "
                "fewer requests at once, or add workers or replicas", RETRY_AFTER_SECONDS)
        if not self._slot_free(model):
            owed = self._owed_before(model)
            promised = f" and {owed} promised to other models' waiting requests" if owed else ""
            raise WorkerBusy(
                f"this worker has {self._total} predictions in flight{promised}, as many as it takes "
                f"(MAX_IN_FLIGHT={bounds.per_worker}); retry after the Retry-After seconds (another worker "
                "or replica may answer at once)", RETRY_AFTER_SECONDS)

    def _give_back(self, model: str) -> None:
        with self._lock:
            held = self._by_model.pop(model) - 1
            if held:
                self._by_model[model] = held
            self._total -= 1
            if self._waiting:
                self._freed.notify_all()
        PREDICTIONS_IN_FLIGHT.dec()


class Slot:
    """A slot :meth:`Admission.admitted` took; the ``with`` block it opens gives it back when it ends."""

    __slots__ = ("_admission", "_model")

    def __init__(self, admission: Admission, model: str):
        self._admission, self._model = admission, model

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info) -> None:
        self._admission._give_back(self._model)


def _check(deadline: Deadline) -> None:
    """Raise :class:`DeadlinePassed` when ``deadline`` has passed."""
    now = time.monotonic()
    if now >= deadline.at:
        raise DeadlinePassed(
            f"the request waited {now - deadline.arrived:.3f} s in this worker and its X-Request-Timeout of "
            f"{deadline.seconds:g} s passed before the prediction could start; nothing was computed: retry after "
            "the Retry-After seconds, or send a longer X-Request-Timeout", RETRY_AFTER_SECONDS)
