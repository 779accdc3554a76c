"""Failed authentication is limited per client address: after ``AUTH_FAILURES_PER_MINUTE`` bad bearer
tokens or refused sign-ins within a minute, each further one is answered 429 with ``Retry-After``
until the minute has passed.

Only an attempt that fails is counted and only such an attempt is refused: a good token is answered
whatever its address did, and so is a request that sends no token, so one guesser behind a NAT or a
load balancer locks nobody else out. (Tokens the registry makes are 256 random bits; the limit
slows a guesser of a weak ``ADMIN_TOKEN`` and keeps failed lookups cheap, it is no lockout.)

The counts are kept in memory the workers of a replica share (a table mapped before gunicorn forks
them), or, when ``RATELIMIT_STORAGE_URI`` names a store such as ``redis://host:6379``, in that
store, shared by every replica that names it; ``RATELIMIT_KEY_PREFIX`` keeps deployments sharing one
store apart. A store that does not answer never fails a request: the failure is logged and answered
401. Behind a proxy, set ``PROXY_HOPS`` so the client's own address is counted, not the proxy's.
"""
import hashlib
import logging
import math
import mmap
import multiprocessing
import struct
import time

from flask import Flask, current_app, request
from limits import parse, storage, strategies
from limits.errors import StorageError
from werkzeug.exceptions import TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

from api.settings import settings_of

log = logging.getLogger(__name__)

EXTENSION = "auth_failure_limiter"
WINDOW_SECONDS = 60
LOCK_TIMEOUT_SECONDS = 0.5


class SharedWindows:
    """Counts per key over one-minute windows, each starting at its key's first hit (as ``limits``
    counts in Redis), in anonymous shared memory: every process forked after it is made (gunicorn's
    workers, from the master that preloads the app) counts in the same table.

    Keys are hashed to one of ``slots`` counters; two addresses that share one count together, which
    can only refuse sooner an address that is itself failing.
    """

    SLOT = struct.Struct("<dq")  # when the window started, its count

    def __init__(self, slots: int = 65_536):
        self.slots = slots
        self.table = mmap.mmap(-1, slots * self.SLOT.size)  # anonymous maps are MAP_SHARED across fork
        self.lock = multiprocessing.get_context("fork").Lock()

    def hit(self, key: str) -> tuple[int, float]:
        """Count one more for ``key``: the count in its window so far, and the seconds left in it."""
        now = time.time()
        slot = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") % self.slots
        offset = slot * self.SLOT.size
        # A worker killed while it held the lock (for a few instructions) leaves it held: then count nothing.
        if not self.lock.acquire(timeout=LOCK_TIMEOUT_SECONDS):
            return 0, WINDOW_SECONDS
        try:
            started, count = self.SLOT.unpack_from(self.table, offset)
            if not 0 <= now - started < WINDOW_SECONDS:
                started, count = now, 0
            count += 1
            self.SLOT.pack_into(self.table, offset, started, count)
        finally:
            self.lock.release()
        return count, started + WINDOW_SECONDS - now


class FailureLimit:
    """At most ``per_minute`` counted failures per client address within each minute."""

    def __init__(self, per_minute: int, storage_uri: str, key_prefix: str):
        self.per_minute = per_minute
        self.key_prefix = key_prefix
        if storage_uri:
            self.limit = parse(f"{per_minute} per minute")
            self.windows = strategies.FixedWindowRateLimiter(
                storage.storage_from_string(storage_uri, wrap_exceptions=True)
            )
            self.shared = None
        else:
            self.shared = SharedWindows()

    def fail(self, address: str) -> int:
        """Count one failure of ``address``; how long it must wait when that was one too many (else 0)."""
        if self.shared is not None:
            count, left = self.shared.hit(f"{self.key_prefix}/{address}")
            return max(1, math.ceil(left)) if count > self.per_minute else 0
        try:
            if self.windows.hit(self.limit, self.key_prefix, address):
                return 0
            reset_at, _ = self.windows.get_window_stats(self.limit, self.key_prefix, address)
        except StorageError as exc:
            log.warning("failed authentication not counted: the rate-limit store did not answer (%s)", exc)
            return 0
        return max(1, math.ceil(reset_at - time.time()))


def init_app(app: Flask) -> None:
    """Limit failed authentication on ``app``, with its own counters (one limit per app)."""
    settings = settings_of(app)
    hops = settings.server.proxy_hops
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    access = settings.access
    if access.auth_failures_per_minute:
        app.extensions[EXTENSION] = FailureLimit(
            access.auth_failures_per_minute, access.ratelimit_storage_uri or "", access.ratelimit_key_prefix
        )


def authentication_failed(address: str | None = None) -> None:
    """Count a failed authentication (a bad token, a refused sign-in) of ``address`` (default: this request's);
    raise 429 with Retry-After when the address has now failed more often than the limit allows."""
    limit = current_app.extensions.get(EXTENSION)
    wait = limit.fail(address or address_of(request.environ)) if limit is not None else 0
    if wait:
        raise TooManyRequests(retry_after=wait)


def address_of(environ: dict) -> str:
    """The client address a request is counted under (past ``PROXY_HOPS`` proxies once ProxyFix ran)."""
    return environ.get("REMOTE_ADDR") or "127.0.0.1"
