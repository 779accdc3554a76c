"""Which loaded model answers ``<name>/<ref>`` in this process, and how alias moves and rollouts reach it.

The database is the single source of truth. Each process keeps a snapshot mapping every alias
to already-loaded models (its primary version, and the canary and shadow of a rollout on it) and
refreshes it in the background: whatever changed is loaded first and swapped in second, so
requests never wait for a load and never see a half-ready model.
"""
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager

from sqlalchemy.exc import OperationalError

from registry import lookups
from registry.changes import AliasDeleted, AliasServes, ModelChanged, VersionRetired
from registry.errors import NotFetchedYet, StoreUnavailable, VersionArchived
from registry.facts import RolloutSpec, VersionInfo
from registry.lookups import find_model, find_version
from registry.names import LATEST, parse_ref
from registry.serving.cache import ModelCache, ServableModel
from registry.serving.load_failures import LoadFailures
from registry.serving.loader import Loader
from registry.serving.routing import AliasState, Arm, LiveRollout, Route, route
from registry.telemetry import ALIAS_VERSION, CACHE_LOAD_FAILURES, CACHE_LOADS, MODEL_LOAD_SECONDS, SWAPS, hold, let_go

log = logging.getLogger(__name__)

AliasKey = tuple[str, str]  # (model name, alias name)


class ModelServer:
    """Per-process serving state: a model cache plus the alias snapshot kept fresh by a watcher."""

    def __init__(
        self,
        loader: Loader,
        *,
        memory_budget_bytes: int,
        refresh_seconds: float,
        session_scope: Callable[[], AbstractContextManager],
        on_poll: Callable[[], None] = lambda: None,
        on_rollout: Callable[[AliasKey, int, LiveRollout], None] = lambda key, primary, rollout: None,
    ):
        self.loader = loader
        self.cache = ModelCache(memory_budget_bytes, pinned=self._pinned_versions, on_change=self._publish_held)
        self._wanted: set[tuple[str, int]] = set()  # what the aliases and rollouts read last ask to serve
        self.poll_seconds = max(0.05, refresh_seconds / 4)
        self.failures = LoadFailures(first_delay=self.poll_seconds)
        self._failed: dict[AliasKey, VersionInfo] = {}  # alias targets that could not load
        self._unservable: list[dict] = []
        self._session_scope = session_scope
        self._aliases: dict[AliasKey, AliasState] = {}
        self._archived: frozenset[tuple[str, int]] = frozenset()
        self._watched_latest: set[str] = set()
        self._moves = 0
        self._moved_at: dict[AliasKey, int] = {}
        self._seen_marker: tuple | None = None  # the change marker the snapshot reflects (but for _failed)
        self._observers: list[Callable[[], None]] = []
        self._told_marker: tuple | None = None  # the change marker the observers were last told of
        self._observer_failed = False
        self._lock = threading.Lock()
        self._held: set[tuple[str, int]] = set()  # what registry_model_loaded says this process holds
        self._held_lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._listener = None
        self._database_down = False
        self._read_once = False  # the aliases were read from the database at least once
        self._starved: list[dict] = []  # aliases never served here: their artifact could not be fetched yet
        self._warm = False  # a refresh once found every alias served (or failing for another reason than the store)
        self._on_poll = on_poll  # other periodic work of this process's serving (flushing figures)
        self._on_rollout = on_rollout  # told of each rollout this process starts serving, with the primary's version

    def servable(self, name: str, ref: str) -> ServableModel:
        """The loaded model that answers ``name``/``ref`` now (an alias: its primary version)."""
        target = parse_ref(ref)
        if isinstance(target, str):
            return self._alias_state(name, target).primary
        return self._pinned(name, target)

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

    def _alias_state(self, name: str, alias: str) -> AliasState:
        hit = self._aliases.get((name, alias))
        # Only 'latest' can be left on an archived version; then it is worked out again.
        if hit is not None and (name, hit.primary.version) not in self._archived:
            return hit
        return self._resolve_alias(name, alias)

    def _pinned(self, name: str, number: int) -> ServableModel:
        hit = self.cache.peek((name, number))
        if hit is not None and (name, number) not in self._archived:
            return hit
        return self._resolve_pinned(name, number)

    def load(self, info: VersionInfo) -> ServableModel:
        """The loaded model of a version (through the cache: one load per version per process).

        A version that failed to load answers with the same error, without reading its file again,
        until its backoff has passed or its file has changed.
        """
        self.failures.raise_if_waiting(_failure_key(info), self.loader.stamp(info.sha256))
        return self.cache.get((info.model, info.number), lambda: self._load(info))

    @property
    def knows_its_aliases(self) -> bool:
        """True once this process read its aliases from the database: from then on it answers them
        whatever happens to the database."""
        return self._read_once

    def starved(self) -> list[dict]:
        """Aliases this process serves nothing for because the artifact store did not answer when it
        first needed their version (a new replica with an empty node cache, say). Until none is left it
        is not ready; from then on it stays ready and serves what it holds whatever the store does."""
        return list(self._starved)

    def unservable(self) -> list[dict]:
        """Aliases whose target version this process could not load at its last refresh."""
        return list(self._unservable)

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
                    self._archived = self._archived | {(change.model, change.number)}
                self.cache.discard((change.model, change.number))
            elif isinstance(change, ModelChanged):
                self.wake()  # the watcher tells the observers, as it does for other processes' changes

    def _serve(self, key: AliasKey, state: AliasState | None) -> None:
        """Serve ``key`` with ``state`` (None: not at all) from now on, ahead of the watcher's next read."""
        with self._lock:
            self._moves += 1
            self._moved_at[key] = self._moves
            snapshot = {k: v for k, v in self._aliases.items() if k != key}
            if state is not None:
                snapshot[key] = state
            self._install(snapshot)

    def observe_changes(self, observer: Callable[[], None]) -> None:
        """Call ``observer`` from the watcher's thread when it starts and whenever it finds the registry
        changed, whatever the traffic: what follows a model's settings (its prediction-log share) reaches
        every worker of every replica as moved aliases do, within ``ALIAS_REFRESH_SECONDS``. An
        observer that raises is called again at the next poll."""
        self._observers.append(observer)

    def listen(self, listener) -> None:
        """Be woken by ``listener`` (a :class:`~registry.serving.notifications.ChangeListener`, started
        with the watcher) as soon as another process commits a change, instead of at the next poll."""
        self._listener = listener

    def ensure_started(self) -> None:
        """Warm every aliased model, then keep the snapshot fresh from a daemon thread."""
        if self._started:  # every request asks: no lock once it has started
            return
        with self._lock:
            if self._started:
                return
            self._started = True
        self._refresh_logged()
        threading.Thread(target=self._watch, name="alias-watcher", daemon=True).start()
        if self._listener is not None:
            self._listener.start(self.wake)

    def wake(self) -> None:
        """Refresh now rather than at the next poll (another process committed a change)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the watcher thread (tests and shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.stop()

    def refresh(self) -> None:
        """Read every alias from the database when anything moved; load what moved, then swap it in.

        Each poll costs one small query (the change marker); the aliases are read only when it moves.
        """
        with self._lock:
            started_at = self._moves
        written = self._drop_written()
        with self._session_scope():
            marker = self._read_marker()
            unchanged = marker == self._seen_marker and not self._retry_due() and not written
            if not unchanged:
                targets = self._read_alias_targets()
                rollouts = self._read_rollouts()
                archived = lookups.archived_versions()
        self._tell_observers(marker)  # before any load: a share must not wait for a model to load
        if unchanged:
            return
        self._wanted = {(info.model, info.number) for info in targets.values()} | {
            (arm.model, arm.number) for spec in rollouts.values() for arm in (spec.canary, spec.shadow) if arm is not None
        }
        loaded = {key: self._loaded_or_current(key, info, written) for key, info in targets.items()}
        plans = {key: self._loaded_rollout(key, spec, written) for key, spec in rollouts.items()}
        # A target that failed to load is tried again at a later poll, once its backoff has passed.
        self._failed = {key: info for key, info in targets.items() if loaded[key] is None or loaded[key].version != info.number}
        self._unservable = [self._unservable_entry(key, info, loaded[key]) for key, info in self._failed.items()]
        if not self._warm:
            self._starved = [entry for entry, key in zip(self._unservable, self._failed)
                             if loaded[key] is None and self._waits_for_store(self._failed[key])]
            self._warm = not self._starved
        # A rollout arm that failed to load is tried again at the next poll (its loads back off too).
        self._seen_marker = marker if all(ok for _, ok in plans.values()) else None
        with self._lock:
            snapshot = {k: AliasState(v, plans[k][0] if k in plans else None) for k, v in loaded.items() if v is not None}
            for key, move in self._moved_at.items():
                if move > started_at and key in self._aliases:
                    snapshot[key] = self._aliases[key]  # moved here after our read: newer than it
            # Archiving cannot be undone, so a version archived here after our read stays refused.
            self._archived = archived | self._archived
            self._install(snapshot)
            self._read_once = True
        for key in self.cache.keys() & archived:
            self.cache.discard(key)

    def _tell_observers(self, marker: tuple) -> None:
        """Tell the observers once per change of ``marker``, once this process serves (not in gunicorn's
        master, whose warm-up is no start); one that fails is told again at the next poll."""
        if not self._started or marker == self._told_marker:
            return
        for observer in self._observers:
            try:
                observer()
            except Exception:
                if not self._observer_failed:  # once, not at every poll
                    log.exception("could not follow a change of the registry; trying again at every poll")
                self._observer_failed = True
                return
        self._observer_failed = False
        self._told_marker = marker

    def _install(self, snapshot: dict[AliasKey, AliasState]) -> None:
        """Replace the snapshot whole (readers never see it half-built); count what changed.

        A version no alias serves any more stays in the cache until evicted: a rollback to it is instant.
        """
        for (name, alias), state in snapshot.items():
            current = self._aliases.get((name, alias))
            if current is None or current.primary.version != state.primary.version:
                SWAPS.labels(name, alias).inc()
                ALIAS_VERSION.labels(name, alias).set(state.primary.version)
            known = current.rollout.id if current is not None and current.rollout is not None else None
            if state.rollout is not None and state.rollout.id != known:
                self._on_rollout((name, alias), state.primary.version, state.rollout)
        self._aliases = snapshot
        self._publish_held()

    def _pinned_versions(self) -> set[tuple[str, int]]:
        """What the model cache must keep loaded: what the aliases and rollouts serve, or are about to."""
        return _versions_of(self._aliases) | self._wanted

    def _publish_held(self) -> None:
        """Tell the metrics which versions this server holds now, and which it let go."""
        with self._held_lock:
            held = self.cache.keys() | _versions_of(self._aliases)
            for model, number in held - self._held:
                hold(model, str(number))
            for model, number in self._held - held:
                let_go(model, str(number))
            self._held = held

    def _drop_written(self) -> set[tuple[str, int]]:
        """The loaded versions whose mapped files were written since they were checked (on this machine's
        disk, under this worker): out of the cache now, loaded again by this refresh (what serves them
        meanwhile stays: the walk never reads outside its records)."""
        loaded = {(s.model, s.version): s for s in self.cache.models()}
        loaded.update({(s.model, s.version): s for s in _servables_of(self._aliases)})
        written = {key for key, servable in loaded.items() if self.loader.changed(servable)}
        for key in written:
            log.warning("the served form of %s v%s was written on disk since it was checked; loading it again", *key)
            self.cache.discard(key)
        return written

    def _loaded_or_current(self, key: AliasKey, info: VersionInfo,
                           written: set[tuple[str, int]] = frozenset()) -> ServableModel | None:
        """The new target loaded, or, if it cannot load, the model the alias is served with now."""
        current = self._aliases[key].primary if key in self._aliases else None
        if current is not None and current.version == info.number and (current.model, current.version) not in written:
            return current
        try:
            return self.load(info)
        except Exception:  # logged once per attempt by _load; the alias keeps its current model
            return current

    def _retry_due(self) -> bool:
        """True when a target that failed to load may be tried again (its delay passed, or its file changed)."""
        return any(
            not self.failures.waiting(_failure_key(info), self.loader.stamp(info.sha256)) for info in self._failed.values()
        )

    def _waits_for_store(self, info: VersionInfo) -> bool:
        """Not loaded for want of the store: it failed to answer, or was not asked yet (no failure recorded)."""
        failure = self.failures.get(_failure_key(info))
        return failure is None or isinstance(failure.error, StoreUnavailable)

    def _unservable_entry(self, key: AliasKey, info: VersionInfo, serving: ServableModel | None) -> dict:
        failure = self.failures.get(_failure_key(info))
        return {
            "model": key[0],
            "alias": key[1],
            "version": info.number,
            "error": failure.detail if failure is not None else "not loaded yet",
            "serving": serving.version if serving is not None else None,
        }

    def _read_marker(self) -> tuple:
        return lookups.change_marker()

    def _read_alias_targets(self) -> dict[AliasKey, VersionInfo]:
        targets = {(model, alias): VersionInfo.of(version) for model, alias, version in lookups.alias_targets()}
        for name in list(self._watched_latest):
            version = lookups.latest_of(name)
            if version is not None:
                targets[(name, LATEST)] = VersionInfo.of(version)
        return targets

    def _read_rollouts(self) -> dict[AliasKey, RolloutSpec]:
        return {(r.model.name, r.alias): RolloutSpec.of(r) for r in lookups.active_rollouts()}

    def _loaded_rollout(self, key: AliasKey, spec: RolloutSpec,
                        written: set[tuple[str, int]] = frozenset()) -> tuple[LiveRollout | None, bool]:
        """The rollout with its versions loaded, and True; when one cannot load, what serves now, and False.

        What serves now is kept only if it is an earlier state of the same rollout.
        """
        current = self._aliases[key].rollout if key in self._aliases else None
        if current is not None and _serves(current, spec) and not written & _versions_of({key: self._aliases[key]}):
            return current, True
        try:
            canary = Arm(self.load(spec.canary), spec.canary_percent) if spec.canary else None
            shadow = Arm(self.load(spec.shadow), spec.shadow_percent) if spec.shadow else None
        except Exception:  # logged once per attempt by _load; what serves now stays
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

    def _load(self, info: VersionInfo) -> ServableModel:
        stamp = self.loader.stamp(info.sha256)  # before reading: a change during the read means "try again"
        started = time.perf_counter()
        try:
            servable = self.loader(info)
        except NotFetchedYet:
            raise  # not a failure: the artifact is fetched where that is allowed (a worker, after the fork)
        except Exception as exc:
            CACHE_LOAD_FAILURES.labels(info.model).inc()
            failure = self.failures.record(_failure_key(info), exc, stamp)
            # One line per attempt, no traceback: the detail says what is wrong and what to do.
            log.error(
                "could not load %s v%s: %s (attempt %d; next attempt in %.2f s at the earliest)",
                info.model, info.number, _log_detail(exc), failure.attempts, failure.delay,
            )
            raise
        self.failures.clear(_failure_key(info))
        CACHE_LOADS.labels(info.model).inc()
        MODEL_LOAD_SECONDS.observe(time.perf_counter() - started)
        return servable

    def _watch(self) -> None:
        while True:
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            self._refresh_logged()
            self._on_poll()

    def _refresh_logged(self) -> None:
        """Refresh, logging a database outage once (not at every poll) and its end."""
        try:
            self.refresh()
        except OperationalError as exc:
            if not self._database_down:
                log.error("alias refresh failed: the database is unavailable (%s); serving the last known aliases",
                          exc.orig if exc.orig is not None else exc)
            self._database_down = True
            return
        except Exception:
            log.exception("alias refresh failed; serving the last known aliases")
            return
        if self._database_down:
            log.warning("the database answers again; alias refresh resumed")
            self._database_down = False


def _failure_key(info: VersionInfo) -> tuple:
    return info.model, info.number, info.sha256


def _log_detail(exc: Exception) -> str:
    detail = getattr(exc, "detail", None)
    return detail if isinstance(detail, str) else f"{type(exc).__name__}: {exc}"


def _serves(live: LiveRollout, spec: RolloutSpec) -> bool:
    """Whether ``live`` serves exactly the rollout ``spec`` describes already."""
    def same(arm: Arm | None, info: VersionInfo | None, percent: float | None) -> bool:
        if arm is None or info is None:
            return arm is None and info is None
        return arm.servable.version == info.number and arm.percent == percent

    return (live.id == spec.id and live.sticky_header == spec.sticky_header and live.mirror == spec.mirror
            and live.epoch == spec.epoch
            and same(live.canary, spec.canary, spec.canary_percent)
            and same(live.shadow, spec.shadow, spec.shadow_percent))


def _versions_of(aliases: dict[AliasKey, AliasState]) -> set[tuple[str, int]]:
    """(model, version) of every version an alias snapshot serves: primaries and rollout arms."""
    return {(servable.model, servable.version) for servable in _servables_of(aliases)}


def _servables_of(aliases: dict[AliasKey, AliasState]) -> list[ServableModel]:
    """Every loaded model an alias snapshot serves: primaries and rollout arms."""
    servables = []
    for state in aliases.values():
        servables.append(state.primary)
        rollout = state.rollout
        for arm in (rollout.canary, rollout.shadow) if rollout is not None else ():
            if arm is not None:
                servables.append(arm.servable)
    return servables
