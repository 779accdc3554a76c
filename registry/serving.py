"""Which loaded model answers ``<name>/<ref>`` in this process, and how alias moves reach it.

The database is the single source of truth. Each process keeps a snapshot mapping every alias
to an already-loaded model and refreshes it in the background: a moved alias is loaded first
and swapped in second, so requests never wait for a load and never see a half-ready model.
"""
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import func, select

from registry.artifacts import ArtifactStore
from registry.cache import ModelCache, ServableModel
from registry.db import db
from registry.errors import VersionArchived
from registry.introspect import takes_named_columns
from registry.lookups import find_model, find_version
from registry.names import LATEST, parse_ref
from registry.predictors import predictor_for
from registry.safe_pickle import load_estimator
from registry.signature import Signature
from registry.tables import Alias, ModelVersion, PromotionEvent, RegisteredModel
from registry.telemetry import ALIAS_VERSION, CACHE_LOAD_FAILURES, CACHE_LOADS, SWAPS

log = logging.getLogger(__name__)

AliasKey = tuple[str, str]  # (model name, alias name)


@dataclass(frozen=True)
class VersionInfo:
    """What is needed to load a version, read from its row while a session is open."""

    model: str
    number: int
    sha256: str
    task: str
    signature: dict
    status: str = "ready"

    @classmethod
    def of(cls, row: ModelVersion) -> "VersionInfo":
        """Copy the loading facts out of an ORM row."""
        return cls(row.model.name, row.number, row.sha256, row.task, row.signature, row.status)


class ModelServer:
    """Per-process serving state: a model cache plus the alias snapshot kept fresh by a watcher."""

    def __init__(
        self,
        store: ArtifactStore,
        cache_size: int,
        refresh_seconds: float,
        session_scope: Callable[[], AbstractContextManager],
    ):
        self.store = store
        self.cache = ModelCache(cache_size)
        self.poll_seconds = max(0.05, refresh_seconds / 4)
        self._session_scope = session_scope
        self._aliases: dict[AliasKey, ServableModel] = {}
        self._archived: frozenset[tuple[str, int]] = frozenset()
        self._watched_latest: set[str] = set()
        self._moves = 0
        self._moved_at: dict[AliasKey, int] = {}
        self._seen_marker: tuple | None = None  # the change marker the snapshot reflects fully
        self._lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()

    def servable(self, name: str, ref: str) -> ServableModel:
        """The loaded model that answers ``name``/``ref`` now (ref: number, alias or ``latest``)."""
        target = parse_ref(ref)
        if isinstance(target, str):
            hit = self._aliases.get((name, target))
            # Only 'latest' can be left on an archived version; then it is worked out again.
            if hit is not None and (name, hit.version) not in self._archived:
                return hit
            return self._resolve_alias(name, target)
        hit = self.cache.peek((name, target))
        if hit is not None and (name, target) not in self._archived:
            return hit
        return self._resolve_pinned(name, target)

    def load(self, info: VersionInfo) -> ServableModel:
        """The loaded model of a version (through the cache: one load per version per process)."""
        return self.cache.get((info.model, info.number), lambda: self._load(info))

    def note_move(self, name: str, alias: str, servable: ServableModel) -> None:
        """Serve an alias move made by this process at once, without waiting for the watcher."""
        with self._lock:
            self._moves += 1
            self._moved_at[(name, alias)] = self._moves
            self._install({**self._aliases, (name, alias): servable})

    def note_archived(self, name: str, number: int) -> None:
        """Refuse a version archived by this process at once, without waiting for the watcher."""
        with self._lock:
            self._archived = self._archived | {(name, number)}

    def ensure_started(self) -> None:
        """Warm every aliased model, then keep the snapshot fresh from a daemon thread."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self._refresh_logged()
        threading.Thread(target=self._watch, name="alias-watcher", daemon=True).start()

    def stop(self) -> None:
        """Stop the watcher thread (tests and shutdown)."""
        self._stop.set()

    def refresh(self) -> None:
        """Read every alias from the database when anything moved; load what moved, then swap it in.

        Each poll costs one small query (the change marker); the aliases are read only when it moves.
        """
        with self._lock:
            started_at = self._moves
        with self._session_scope():
            marker = self._read_marker()
            if marker == self._seen_marker:
                return
            targets = self._read_alias_targets()
            archived = self._read_archived()
        loaded = {key: self._loaded_or_current(key, info) for key, info in targets.items()}
        # A target that failed to load is tried again at the next poll.
        complete = all(loaded[key] is not None and loaded[key].version == info.number for key, info in targets.items())
        self._seen_marker = marker if complete else None
        with self._lock:
            snapshot = {k: v for k, v in loaded.items() if v is not None}
            for key, move in self._moved_at.items():
                if move > started_at and key in self._aliases:
                    snapshot[key] = self._aliases[key]  # moved here after our read: newer than it
            # Archiving cannot be undone, so a version archived here after our read stays refused.
            self._archived = archived | self._archived
            self._install(snapshot)

    def _install(self, snapshot: dict[AliasKey, ServableModel]) -> None:
        """Replace the snapshot whole (readers never see it half-built); count what changed."""
        for (name, alias), servable in snapshot.items():
            current = self._aliases.get((name, alias))
            if current is None or current.version != servable.version:
                SWAPS.labels(name, alias).inc()
                ALIAS_VERSION.labels(name, alias).set(servable.version)
        self._aliases = snapshot

    def _loaded_or_current(self, key: AliasKey, info: VersionInfo) -> ServableModel | None:
        """The new target loaded, or, if it cannot load, the model the alias is served with now."""
        current = self._aliases.get(key)
        if current is not None and current.version == info.number:
            return current
        try:
            return self.load(info)
        except Exception:
            log.exception("could not load %s v%s for alias %r; keeping the current one", info.model, info.number, key[1])
            return current

    def _read_marker(self) -> tuple:
        """What changes whenever an alias moves, a version is uploaded or one is archived."""
        return tuple(db.session.execute(
            select(
                select(func.max(PromotionEvent.id)).scalar_subquery(),
                select(func.max(ModelVersion.id)).scalar_subquery(),
                select(func.count()).select_from(ModelVersion).where(ModelVersion.status == "archived").scalar_subquery(),
            )
        ).one())

    def _read_alias_targets(self) -> dict[AliasKey, VersionInfo]:
        rows = db.session.execute(
            select(RegisteredModel.name, Alias.name, ModelVersion)
            .join(Alias, Alias.model_id == RegisteredModel.id)
            .join(ModelVersion, ModelVersion.id == Alias.version_id)
        ).all()
        targets = {(model, alias): VersionInfo.of(version) for model, alias, version in rows}
        for name in list(self._watched_latest):
            version = self._latest_of(name)
            if version is not None:
                targets[(name, LATEST)] = VersionInfo.of(version)
        return targets

    def _latest_of(self, name: str) -> ModelVersion | None:
        highest = (
            select(func.max(ModelVersion.number))
            .join(RegisteredModel)
            .where(RegisteredModel.name == name, ModelVersion.status == "ready")
            .scalar_subquery()
        )
        return db.session.execute(
            select(ModelVersion).join(RegisteredModel).where(RegisteredModel.name == name, ModelVersion.number == highest)
        ).scalar_one_or_none()

    def _read_archived(self) -> frozenset[tuple[str, int]]:
        rows = db.session.execute(
            select(RegisteredModel.name, ModelVersion.number)
            .join(ModelVersion, ModelVersion.model_id == RegisteredModel.id)
            .where(ModelVersion.status == "archived")
        ).all()
        return frozenset((name, number) for name, number in rows)

    def _resolve_alias(self, name: str, alias: str) -> ServableModel:
        """An alias this process has not seen yet: ask the database, load, and watch it from now."""
        with self._session_scope():
            info = VersionInfo.of(find_version(find_model(name), alias))
        servable = self.load(info)
        if alias == LATEST:
            with self._lock:
                self._watched_latest.add(name)
        self.note_move(name, alias, servable)
        return servable

    def _resolve_pinned(self, name: str, number: int) -> ServableModel:
        with self._session_scope():
            info = VersionInfo.of(find_version(find_model(name), number))
        if info.status == "archived":
            raise VersionArchived(f"version {number} of {name!r} is archived; use another version or an alias")
        return self.load(info)

    def _load(self, info: VersionInfo) -> ServableModel:
        try:
            estimator = load_estimator(self.store.get(info.sha256)).estimator
        except Exception:
            CACHE_LOAD_FAILURES.labels(info.model).inc()
            raise
        CACHE_LOADS.labels(info.model).inc()
        return ServableModel(
            info.model,
            info.number,
            info.sha256,
            info.task,
            Signature.from_dict(info.signature),
            estimator,
            takes_frame=takes_named_columns(estimator),
            predictor=predictor_for(estimator),
        )

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._refresh_logged()

    def _refresh_logged(self) -> None:
        try:
            self.refresh()
        except Exception:
            log.exception("alias refresh failed; serving the last known aliases")
