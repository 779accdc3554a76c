"""Leases: one holder at a time for a named piece of work in a fleet (one sweeper, one rollout
controller), in the database every replica shares.

A holder renews its lease before it runs out; when it dies (kill -9, a lost machine) the lease
runs out and the next one to ask takes it. Taking and renewing are one conditional UPDATE (or the
first INSERT), so two replicas asking at once cannot both win, on SQLite and PostgreSQL alike.
"""
import logging
import os
import socket
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from registry.db import write_transaction
from registry.process.loop import Loop
from registry.tables import Lease, utcnow

log = logging.getLogger(__name__)

LEASE_PERIODS = 3  # a holder that stops renewing is replaced after this many periods


def holder_id() -> str:
    """A name for this process that no other process in the fleet has (host, pid, and a random part)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def hold(name: str, holder: str, *, seconds: float) -> bool:
    """Take or renew the lease ``name`` for ``seconds`` from now; whether ``holder`` holds it now."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    with write_transaction() as session:
        renewed = session.execute(
            update(Lease).where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at < now))
            .values(holder=holder, expires_at=until)
        ).rowcount
    if renewed:
        return True
    try:
        with write_transaction() as session:
            session.execute(insert(Lease).values(name=name, holder=holder, expires_at=until))
    except IntegrityError:  # someone else holds it (or took it a moment ago)
        return False
    return True


def release(name: str, holder: str) -> None:
    """Let the lease go now (a clean stop), if ``holder`` holds it."""
    with write_transaction() as session:
        session.execute(update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=utcnow()))


class LeasedLoop:
    """Runs ``work`` from a thread of this process every ``every_seconds``, while this process holds
    the lease ``name`` (renewed each turn): every process runs one, one process in the fleet works.
    ``every_turn`` runs at each turn in every process, holder or not (reading what the work found)."""

    def __init__(self, name: str, every_seconds: float, work: Callable[[], object],
                 session_scope: Callable[[], AbstractContextManager], every_turn: Callable[[], object] | None = None):
        self.name = name
        self.every_seconds = every_seconds
        self._work = work
        self._every_turn = every_turn
        self._session_scope = session_scope
        self._holder = holder_id()
        self._loop = Loop(f"leased-{name}", every_seconds, self._turn)

    def start(self) -> None:
        """Start this process's thread (once per process; a fork starts its own). 0 seconds: never."""
        if self._loop.running or self.every_seconds <= 0:
            return
        self._holder = holder_id()  # a forked worker is another holder than its parent
        self._loop.start()

    def stop(self) -> None:
        """Stop and let the lease go, so another process takes over at once."""
        if not self._loop.running:
            self._loop.stop()
            return
        self._loop.stop(timeout=30)
        try:
            with self._session_scope():
                release(self.name, self._holder)
        except Exception:  # the database is away: the lease runs out by itself
            log.warning("could not let the %s lease go; it runs out in %s s", self.name,
                        self.every_seconds * LEASE_PERIODS)

    def _turn(self) -> None:
        try:
            with self._session_scope():
                if hold(self.name, self._holder, seconds=self.every_seconds * LEASE_PERIODS):
                    self._work()
                if self._every_turn is not None:
                    self._every_turn()
        except Exception:  # the next turn tries again; the work must never take the worker down
            log.exception("the %s work failed; it runs again in %s s", self.name, self.every_seconds)
