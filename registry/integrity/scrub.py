"""The artifact scrub: every ``ARTIFACT_SCRUB_SECONDS`` one process of the fleet (whoever holds the
``artifact-scrub`` lease) re-hashes the artifact store's copy of every served artifact, the one
checked longest ago first, streamed and held to ``ARTIFACT_SCRUB_MB_PER_SECOND``; a cached form or
a node cache's copy can go on serving a version whose stored copy rotted, and nothing else would
notice. What it finds is kept in ``artifact_checks``; a copy newly found damaged or missing sends
``artifact.damaged``, and from then on the caches keep their copy of it (never evicted) until it is
repaired, ``/readyz`` warns and ``registry_artifacts_damaged`` counts it on every replica.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import delete, select

from registry.artifacts.pacing import Throttle
from registry.artifacts.store import ArtifactStore
from registry.db import db, end_read, write_transaction
from registry.errors import StoreUnavailable
from registry.events import outbox
from registry.integrity.tables import ArtifactCheck
from registry.lookups import served_digests
from registry.tables import ModelVersion, RegisteredModel, utcnow
from registry.telemetry import ARTIFACT_SCRUB_BYTES, ARTIFACT_SCRUB_CHECKS, ARTIFACTS_DAMAGED

log = logging.getLogger(__name__)

LEASE = "artifact-scrub"
_NEVER = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class ScrubSettings:
    """How often the scrub runs, and how fast it may read."""

    every_seconds: float  # ARTIFACT_SCRUB_SECONDS; 0: never in the background (``flask artifacts scrub`` still works)
    bytes_per_second: float  # ARTIFACT_SCRUB_MB_PER_SECOND, in bytes; 0: no limit


@dataclass
class ScrubResult:
    """What one pass checked (sha256 to status), the ``artifact.damaged`` events it sent, and whether
    it stopped early (the store did not answer, or its time was up)."""

    checked: dict[str, str] = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)
    stopped: str | None = None


@dataclass(frozen=True)
class Damage:
    """A stored copy the scrub found not ok: which, how, since when, and the versions that use it."""

    sha256: str
    status: str  # damaged or missing
    since: datetime
    versions: tuple[str, ...]  # "housing v3", …


def scrub(store: ArtifactStore, settings: ScrubSettings, *, budget_seconds: float | None = None) -> ScrubResult:
    """Check the store's copy of every served artifact, and of every one found not ok before, the longest
    unchecked first, until ``budget_seconds`` have passed (call it holding the lease)."""
    served = served_digests()
    checks = {row.sha256: row.checked_at for row in db.session.execute(select(ArtifactCheck)).scalars()}
    bad = set(db.session.execute(select(ArtifactCheck.sha256).where(ArtifactCheck.status != "ok")).scalars())
    end_read()  # hashing may take minutes: hold no snapshot meanwhile
    throttle = Throttle(settings.bytes_per_second)

    def pace(count: int) -> None:
        ARTIFACT_SCRUB_BYTES.inc(count)
        throttle(count)

    result = ScrubResult()
    started = time.monotonic()
    for digest in sorted(served | bad, key=lambda d: (checks.get(d, _NEVER), d)):
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            result.stopped = "its time was up; the next pass goes on from here"
            break
        try:
            status = store.check(digest, pace)
        except StoreUnavailable as exc:
            log.warning("artifact scrub paused: %s", exc.detail)
            result.stopped = exc.detail
            break
        ARTIFACT_SCRUB_CHECKS.labels(status).inc()
        result.checked[digest] = status
        alert = _keep(digest, status, store.location)
        if alert is not None:
            log.error("artifact scrub: the store's copy of %s (%s) is %s; %s", digest, ", ".join(alert["versions"]),
                      status, "re-upload the original file to repair it, or restore it from a backup")
            result.alerts.append(alert)
    _forget_all_but(served)
    return result


def damaged() -> list[Damage]:
    """The stored copies the scrub last found damaged or missing, with the versions that use them."""
    rows = db.session.execute(
        select(ArtifactCheck, RegisteredModel.name, ModelVersion.number)
        .join(ModelVersion, ModelVersion.sha256 == ArtifactCheck.sha256)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
        .where(ArtifactCheck.status != "ok")
        .order_by(ArtifactCheck.sha256, RegisteredModel.name, ModelVersion.number)
    ).all()
    found: dict[str, Damage] = {}
    for check, name, number in rows:
        known = found.get(check.sha256)
        versions = (known.versions if known else ()) + (f"{name} v{number}",)
        found[check.sha256] = Damage(check.sha256, check.status, check.bad_since or check.checked_at, versions)
    return list(found.values())


def damaged_digests() -> set[str]:
    """The sha256 of every artifact whose stored copy the scrub last found damaged or missing: what this
    machine's caches hold of them is the last good copy, never evicted."""
    return set(db.session.execute(select(ArtifactCheck.sha256).where(ArtifactCheck.status != "ok")).scalars())


def _keep(digest: str, status: str, location: str) -> dict | None:
    """Store what was found; the ``artifact.damaged`` data when the copy is newly found not ok."""
    now = utcnow()
    with write_transaction() as session:
        row = session.get(ArtifactCheck, digest)
        before = row.status if row is not None else None
        if row is None:
            row = ArtifactCheck(sha256=digest)
            session.add(row)
        row.status, row.checked_at = status, now
        if status == "ok":
            if before not in (None, "ok"):
                log.warning("artifact scrub: the store's copy of %s is intact again", digest)
            row.bad_since = None
            return None
        if before not in (None, "ok"):
            return None
        row.bad_since = now
        versions = session.execute(
            select(RegisteredModel.name, ModelVersion.number)
            .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
            .where(ModelVersion.sha256 == digest)
            .order_by(RegisteredModel.name, ModelVersion.number)
        ).all()
        alert = {"sha256": digest, "status": status, "store": location,
                 "versions": [f"{name} v{number}" for name, number in versions]}
        outbox.record("artifact.damaged", alert)
    return alert


def _forget_all_but(served: set[str]) -> None:
    """Drop what was found of copies that are intact and no longer served (a bad one stays until repaired)."""
    with write_transaction() as session:
        session.execute(delete(ArtifactCheck).where(ArtifactCheck.status == "ok", ArtifactCheck.sha256.not_in(served)))


class DamageReport:
    """What this process knows of the stored copies found damaged or missing, read from the database at
    each turn of the scrub's loop (in every process, scrubbing or not), so that ``/readyz`` and
    ``/metrics`` never wait for the database to say it."""

    def __init__(self):
        self._damaged: list[Damage] = []

    def refresh(self) -> None:
        """Read what the last scrub found (call it in an app context)."""
        self._damaged = damaged()
        end_read()
        ARTIFACTS_DAMAGED.set(len(self._damaged))

    def current(self) -> list[Damage]:
        """The damaged or missing copies as last read."""
        return list(self._damaged)
