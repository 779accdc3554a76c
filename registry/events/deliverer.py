"""The deliverer: a loop that claims due deliveries and sends each on a small thread pool.

It runs in every gunicorn worker (started and stopped by the app's lifecycle, like the alias watcher) or
alone (``flask webhooks deliver``); its pool is made when it starts and shut down when it stops; any number of them share the work through the claims. A slow or
dead receiver holds one thread for at most the timeout, and only one of its deliveries is in flight.
"""
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from registry.events.claims import Claim, RetryPolicy, claim_due, due_exists, record_attempt
from registry.events.retention import prune
from registry.process.loop import Loop

log = logging.getLogger(__name__)

# How often each deliverer prunes what was sent longer ago than the retention period.
PRUNE_EVERY_SECONDS = 3600.0


@dataclass(frozen=True)
class DeliverySettings:
    """How a deliverer sends: threads, timeouts, polling, the claim lease and the retry schedule."""

    threads: int = 4
    timeout_seconds: float = 5.0
    deadline_seconds: float = 10.0  # a whole attempt, however the receiver trickles its answer
    poll_seconds: float = 1.0
    lease_seconds: float = 60.0
    allow_private: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retention_seconds: float = 30 * 86_400.0

    def __post_init__(self):
        if self.lease_seconds <= max(2 * self.timeout_seconds, self.deadline_seconds):
            raise ValueError("the claim lease must be longer than an attempt may take (its deadline, "
                             "and twice the send timeout: connect + read)")


class Deliverer:
    """Claims and sends due deliveries from a background thread, ``threads`` at a time."""

    def __init__(self, settings: DeliverySettings, session_scope: Callable[[], AbstractContextManager]):
        self.settings = settings
        self._session_scope = session_scope
        self._sender = None  # made at the start, with the pool
        self._lock = threading.Lock()
        self._busy = 0
        self._loop = Loop("webhook-deliverer", settings.poll_seconds, self._turn, first_tick_at_start=True)
        self._pool: ThreadPoolExecutor | None = None
        self._pruned_at: float | None = None  # never yet: the first poll prunes

    def start(self) -> None:
        """Open the pool of senders and start the polling loop (once per process)."""
        with self._lock:
            if self._loop.running:
                return
            from registry.events.sending import Sender  # here: requests' import is a tenth of a second no request needs

            self._sender = Sender(self.settings.timeout_seconds, self.settings.allow_private,
                                  self.settings.deadline_seconds)
            self._pool = ThreadPoolExecutor(self.settings.threads, thread_name_prefix="webhook-send")
            self._loop.start()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll (events were just committed)."""
        self._loop.wake()

    @property
    def started(self) -> bool:
        """Whether this process's background deliverer is running."""
        return self._loop.running

    def stop(self, wait: bool = False) -> None:
        """Stop polling; sends in flight finish in their threads. ``wait``: send what is due first (the events
        this process committed last, whose wake-up the loop may not have acted on), then wait for every
        send (each at most its deadline)."""
        finished = self._loop.stop(timeout=self.settings.deadline_seconds if wait else None)
        if self._pool is None:
            return
        if wait and finished:  # else it is stuck on the database, which would not answer us either
            self._send_due_before_stopping()
        self._pool.shutdown(wait=wait)

    def deliver_due(self) -> int:
        """Claim what is due (up to the free threads) and hand it to the pool; how many were claimed."""
        if self._loop.stopping:
            return 0
        return self._claim_and_send()

    def _send_due_before_stopping(self) -> None:
        try:
            self._claim_and_send()
        except Exception as exc:  # the database is away: another deliverer sends them, or this one at its next start
            log.warning("claiming webhook deliveries before stopping failed (%s); they are sent later", exc)

    def _claim_and_send(self) -> int:
        free = self._free_threads()
        if free == 0:
            return 0
        with self._session_scope():
            claims = claim_due(free, self.settings.lease_seconds) if due_exists() else []
        for claim in claims:
            with self._lock:
                self._busy += 1
            self._pool.submit(self._deliver, claim)
        return len(claims)

    def prune_if_due(self) -> None:
        """Prune what was sent longer ago than the retention period, at most once per ``PRUNE_EVERY_SECONDS``."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        try:
            with self._session_scope():
                gone = prune(self.settings.retention_seconds)
        except Exception as exc:  # the database is away: tried again at the next period
            log.warning("pruning sent webhook deliveries failed (%s); trying again in an hour", exc)
            return
        if gone:
            log.info("pruned %d webhook deliveries older than %g days", gone, self.settings.retention_seconds / 86_400)

    def _turn(self) -> bool:
        """Prune when due, claim and send what is due; True when something was claimed (look again at once)."""
        self.prune_if_due()
        try:
            return self.deliver_due() > 0
        except Exception as exc:  # the database is away: one line per poll, not a traceback flood
            log.warning("claiming webhook deliveries failed (%s); trying again at the next poll", exc)
            return False

    def _deliver(self, claim: Claim) -> None:
        try:
            outcome = self._sender.send(claim.message)
            with self._session_scope():
                record_attempt(claim, outcome, self.settings.retry)
        except Exception as exc:
            log.warning("recording webhook delivery %s failed (%s); it is sent again when its lease runs out", claim.delivery_id, exc)
        finally:
            with self._lock:
                self._busy -= 1
            self._loop.wake()  # a thread is free: look for more work without waiting a poll

    def _free_threads(self) -> int:
        with self._lock:
            return self.settings.threads - self._busy
