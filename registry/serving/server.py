"""Which loaded model answers ``<name>/<ref>`` in this process, and how alias moves and rollouts reach it.

The database is the single source of truth. Each process keeps a snapshot mapping every alias to
already-loaded models (its primary version, and the canary and shadow of a rollout on it) that its
watcher refreshes in the background: whatever changed is loaded first and swapped in second, so
requests never wait for a load and never see a half-ready model. The parts, each in its module: the
snapshot (``snapshot``), the loads (``version_loads``), the watcher (``watcher``) and what readiness
reads (``readiness``); telemetry follows what is held through the ``on_held`` hook.
"""
import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager

from registry import lookups
from registry.artifacts.signature import NAMED_BY_SIGNATURE
from registry.changes import AliasDeleted, AliasServes, ModelChanged, VersionRetired
from registry.errors import VersionArchived
from registry.facts import RolloutSpec, VersionInfo
from registry.lookups import find_model, find_version
from registry.names import LATEST, parse_ref
from registry.serving.cache import ServableModel
from registry.serving.loader import Loader
from registry.serving.readiness import ServingReadiness
from registry.serving.routing import AliasState, Arm, LiveRollout, Route, route
from registry.serving.snapshot import AliasKey, AliasSnapshot, serves
from registry.serving.version_loads import VersionLoads
from registry.serving.watcher import AliasWatcher
from registry.telemetry import ALIAS_VERSION, SWAPS

log = logging.getLogger(__name__)


class ModelServer:
    """Per-process serving state: the versions loaded, and the alias snapshot its watcher keeps fresh."""

    def __init__(
        self,
        loader: Loader,
        *,
        memory_budget_bytes: int,
        refresh_seconds: float,
        session_scope: Callable[[], AbstractContextManager],
        on_poll: Callable[[], None] = lambda: None,
        on_rollout: Callable[[AliasKey, int, LiveRollout], None] = lambda key, primary, rollout: None,
        on_held: Callable[[set[tuple[str, int]]], None] = lambda held: None,
    ):
        self._lock = threading.Lock()
        self._held_lock = threading.Lock()
        self._snapshot = AliasSnapshot()
        self._wanted: set[tuple[str, int]] = set()  # what the aliases and rollouts read last ask to serve
        poll_seconds = max(0.05, refresh_seconds / 4)
        self.loads = VersionLoads(loader, memory_budget_bytes=memory_budget_bytes, retry_after_seconds=poll_seconds,
                                  pinned=self._pinned_versions, on_change=self._publish_held)
        self.cache = self.loads.cache
        self.watcher = AliasWatcher(lambda: self.refresh(), poll_seconds=poll_seconds, on_poll=on_poll)
        self.readiness = ServingReadiness()
        self._session_scope = session_scope
        self._failed: dict[AliasKey, VersionInfo] = {}  # alias targets that could not load
        self._watched_latest: set[str] = set()
        self._moves = 0
        self._moved_at: dict[AliasKey, int] = {}
        self._seen_marker: tuple | None = None  # the change marker the snapshot reflects (but for _failed)
        self._on_rollout = on_rollout  # told of each rollout this process starts serving, with the primary's version
        self._on_held = on_held  # told what this process holds (cache and snapshot) whenever it changed
        self._held_models: frozenset[str] = frozenset()  # the names of the models of what it holds

    def servable(self, name: str, ref: str) -> ServableModel:
        """The loaded model that answers ``name``/``ref`` now (an alias: its primary version)."""
        target = parse_ref(ref)
        if isinstance(target, str):
            return self._alias_state(name, target).primary
        return self._pinned(name, target)

    def holds(self, name: str) -> bool:
        """Whether this process holds a version of the model ``name`` loaded (for an alias or a pinned route)."""
        return name in self._held_models

    def holds_others_than(self, name: str) -> bool:
        """Whether this process holds a version of any model but ``name`` loaded: it serves others too."""
        return any(held != name for held in self._held_models)

    def route(self, name: str, ref: str, headers: Mapping[str, str]) -> Route:
        """Where a request for ``name``/``ref`` goes; ``headers`` may carry its rollout's sticky key.

        Alias requests follow the alias's rollout; a pinned version is never routed.
        """
        target = parse_ref(ref)
        if not isinstance(target, str):
            return Route(self._pinned(name, target), None)
        state = self._alias_state(name, target)
        header = state.rollout.sticky_header if state.rollout is not None else None
        key = headers.get(header) if header else None
        return route(state, model=name, alias=target, key=key, draws=(random.random(), random.random()))

    def load(self, info: VersionInfo) -> ServableModel:
        """The loaded model of a version (one load per version per process; see :class:`VersionLoads`)."""
        return self.loads.load(info)

    def apply(self, changes: Iterable) -> None:
        """Serve changes this process has just committed at once; the watcher brings other processes' changes.

        Their versions were admitted (loaded and scored) before the commit, so this reads the cache.
        """
        for change in changes:
            if isinstance(change, AliasServes):
                key = (change.model, change.alias)
                rollout = self._loaded_rollout(key, change.rollout)[0] if change.rollout is not None else None
                self._serve(key, AliasState(self.load(change.primary), rollout))
            elif isinstance(change, AliasDeleted):
                self._serve((change.model, change.alias), None)
            elif isinstance(change, VersionRetired):
                with self._lock:
                    self._snapshot = AliasSnapshot(self._snapshot.aliases,
                                                   self._snapshot.archived | {(change.model, change.number)})
                self.cache.discard((change.model, change.number))
            elif isinstance(change, ModelChanged):
                self.watcher.wake()  # the watcher tells the observers, as it does for other processes' changes

    def observe_changes(self, observer: Callable[[], None]) -> None:
        """Call ``observer`` from the watcher's thread when it starts and whenever it finds the registry
        changed, whatever the traffic: what follows a model's settings (its prediction-log share) reaches
        every worker of every replica as moved aliases do, within ``ALIAS_REFRESH_SECONDS``."""
        self.watcher.observe(observer)

    def listen(self, listener) -> None:
        """Be woken by ``listener`` as soon as another process commits a change (see :class:`AliasWatcher`)."""
        self.watcher.listen(listener)

    def start(self) -> None:
        """Warm every aliased model, then keep the snapshot fresh from the watcher's thread."""
        self.watcher.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the watcher (tests and shutdown); wait up to ``timeout`` seconds for its threads."""
        self.watcher.stop(timeout)

    def refresh(self) -> None:
        """Read every alias from the database when anything moved; load what moved, then swap it in.

        Each poll costs one small query (the change marker); the aliases are read only when it moves.
        """
        with self._lock:
            started_at = self._moves
        written = self.loads.drop_written(self._snapshot.servables())
        with self._session_scope():
            marker = lookups.change_marker()
            if marker != self._seen_marker:
                written |= self._drop_renamed()
            unchanged = marker == self._seen_marker and not self.loads.retry_due(self._failed.values()) and not written
            if not unchanged:
                targets = self._read_alias_targets()
                rollouts = {(r.model.name, r.alias): RolloutSpec.of(r) for r in lookups.active_rollouts()}
                archived = lookups.archived_versions()
        self.watcher.tell(marker)  # before any load: a share must not wait for a model to load
        if unchanged:
            return
        self._wanted = {(info.model, info.number) for info in targets.values()} | {
            (arm.model, arm.number) for spec in rollouts.values() for arm in (spec.canary, spec.shadow) if arm is not None
        }
        loaded = {key: self._loaded_or_current(key, info, written) for key, info in targets.items()}
        plans = {key: self._loaded_rollout(key, spec, written) for key, spec in rollouts.items()}
        # A target that failed to load is tried again at a later poll, once its backoff has passed.
        self._failed = {key: info for key, info in targets.items() if loaded[key] is None or loaded[key].version != info.number}
        unservable = [self._unservable_entry(key, info, loaded[key]) for key, info in self._failed.items()]
        starved = [entry for entry, key in zip(unservable, self._failed)
                   if loaded[key] is None and self.loads.waits_for_store(self._failed[key])]
        # A rollout arm that failed to load is tried again at the next poll (its loads back off too).
        self._seen_marker = marker if all(ok for _, ok in plans.values()) else None
        with self._lock:
            current = self._snapshot
            aliases = {k: AliasState(v, plans[k][0] if k in plans else None) for k, v in loaded.items() if v is not None}
            for key, move in self._moved_at.items():
                if move > started_at and current.get(key) is not None:
                    aliases[key] = current.get(key)  # moved here after our read: newer than it
            # Archiving cannot be undone, so a version archived here after our read stays refused.
            self._install(AliasSnapshot(aliases, archived | current.archived))
            self.readiness.found(unservable=unservable, starved=starved)
        for key in self.cache.keys() & archived:
            self.cache.discard(key)

    def _drop_renamed(self) -> set[tuple[str, int]]:
        """The held versions whose classes were named since they were loaded (an XGBoost or LightGBM
        classifier's, by a PATCH): out of the cache now, to be loaded again with their names (what serves
        them meanwhile stays, answering the numbers a moment longer)."""
        held = {(s.model, s.version): s for s in [*self.cache.models(), *self._snapshot.servables()]
                if s.framework in NAMED_BY_SIGNATURE and s.signature.classes is not None}
        now = lookups.signed_classes(set(held))
        renamed = {key for key, servable in held.items()
                   if key in now and now[key] != list(servable.signature.classes)}
        for key in renamed:
            self.cache.discard(key)
        return renamed

    def _alias_state(self, name: str, alias: str) -> AliasState:
        snapshot = self._snapshot
        hit = snapshot.get((name, alias))
        # Only 'latest' can be left on an archived version; then it is worked out again.
        if hit is not None and (name, hit.primary.version) not in snapshot.archived:
            return hit
        return self._resolve_alias(name, alias)

    def _pinned(self, name: str, number: int) -> ServableModel:
        hit = self.cache.peek((name, number))
        if hit is not None and (name, number) not in self._snapshot.archived:
            return hit
        return self._resolve_pinned(name, number)

    def _serve(self, key: AliasKey, state: AliasState | None) -> None:
        """Serve ``key`` with ``state`` (None: not at all) from now on, ahead of the watcher's next read."""
        with self._lock:
            self._moves += 1
            self._moved_at[key] = self._moves
            self._install(self._snapshot.serving(key, state))

    def _install(self, snapshot: AliasSnapshot) -> None:
        """Replace the snapshot whole (readers never see it half-built); count what changed.

        A version no alias serves any more stays in the cache until evicted: a rollback to it is instant.
        """
        for (name, alias), state in snapshot.aliases.items():
            current = self._snapshot.get((name, alias))
            if current is None or current.primary.version != state.primary.version:
                SWAPS.labels(name, alias).inc()
                ALIAS_VERSION.labels(name, alias).set(state.primary.version)
            known = current.rollout.id if current is not None and current.rollout is not None else None
            if state.rollout is not None and state.rollout.id != known:
                self._on_rollout((name, alias), state.primary.version, state.rollout)
        self._snapshot = snapshot
        self._publish_held()

    def _pinned_versions(self) -> set[tuple[str, int]]:
        """What the model cache must keep loaded: what the aliases and rollouts serve, or are about to."""
        return self._snapshot.versions() | self._wanted

    def _publish_held(self) -> None:
        """Tell ``on_held`` which versions this server holds now."""
        with self._held_lock:
            held = self.cache.keys() | self._snapshot.versions()
            self._held_models = frozenset(model for model, _ in held)
            self._on_held(held)

    def _loaded_or_current(self, key: AliasKey, info: VersionInfo,
                           written: set[tuple[str, int]] = frozenset()) -> ServableModel | None:
        """The new target loaded, or, if it cannot load, the model the alias is served with now."""
        state = self._snapshot.get(key)
        current = state.primary if state is not None else None
        if current is not None and current.version == info.number and (current.model, current.version) not in written:
            return current
        try:
            return self.load(info)
        except Exception:  # logged once per attempt by the loads; the alias keeps its current model
            return current

    def _unservable_entry(self, key: AliasKey, info: VersionInfo, serving: ServableModel | None) -> dict:
        return {
            "model": key[0],
            "alias": key[1],
            "version": info.number,
            "error": self.loads.failure_detail(info),
            "serving": serving.version if serving is not None else None,
        }

    def _read_alias_targets(self) -> dict[AliasKey, VersionInfo]:
        targets = {(model, alias): VersionInfo.of(version) for model, alias, version in lookups.alias_targets()}
        for name in list(self._watched_latest):
            version = lookups.latest_of(name)
            if version is not None:
                targets[(name, LATEST)] = VersionInfo.of(version)
        return targets

    def _loaded_rollout(self, key: AliasKey, spec: RolloutSpec,
                        written: set[tuple[str, int]] = frozenset()) -> tuple[LiveRollout | None, bool]:
        """The rollout with its versions loaded, and True; when one cannot load, what serves now, and False.

        What serves now is kept only if it is an earlier state of the same rollout.
        """
        state = self._snapshot.get(key)
        current = state.rollout if state is not None else None
        if current is not None and serves(current, spec) and not written & AliasSnapshot({key: state}).versions():
            return current, True
        try:
            canary = Arm(self.load(spec.canary), spec.canary_percent) if spec.canary else None
            shadow = Arm(self.load(spec.shadow), spec.shadow_percent) if spec.shadow else None
        except Exception:  # logged once per attempt by the loads; what serves now stays
            return (current if current is not None and current.id == spec.id else None), False
        return LiveRollout(spec.id, canary, shadow, spec.sticky_header, spec.mirror, spec.started_at, spec.epoch), True

    def _resolve_alias(self, name: str, alias: str) -> AliasState:
        """An alias this process has not seen yet: ask the database, load, and watch it from now."""
        with self._session_scope():
            model = find_model(name)
            info = VersionInfo.of(find_version(model, alias))
            running = lookups.active_rollout(model, alias) if alias != LATEST else None
            spec = RolloutSpec.of(running) if running is not None else None
        servable = self.load(info)
        rollout = self._loaded_rollout((name, alias), spec)[0] if spec is not None else None
        if alias == LATEST:
            with self._lock:
                self._watched_latest.add(name)
        state = AliasState(servable, rollout)
        self._serve((name, alias), state)
        return state

    def _resolve_pinned(self, name: str, number: int) -> ServableModel:
        with self._session_scope():
            info = VersionInfo.of(find_version(find_model(name), number))
        if info.status == "archived":
            raise VersionArchived(f"version {number} of {name!r} is archived; use another version or an alias")
        return self.load(info)
