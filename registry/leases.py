"""Leases: one holder at a time for a named piece of work in a fleet (one sweeper, one rollout
controller), in the database every replica shares.

A holder renews its lease before it runs out; when it dies (kill -9, a lost machine) the lease
runs out and the next one to ask takes it. Taking and renewing are one conditional UPDATE (or the
first INSERT), so two replicas asking at once cannot both win, on SQLite and PostgreSQL alike.
"""
import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from registry.db import write_transaction
from registry.tables import Lease, utcnow


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
