"""The model server with a fake loader: how committed changes are served, and what loads cost.

No database: a session scope that raises stands for it, so a test can also tell when the server
would have had to ask the database (the change was not in its snapshot).
"""
from contextlib import contextmanager, nullcontext

import pytest

from registry.artifacts.signature import Signature
from registry.changes import AliasDeleted, AliasServes, VersionRetired
from registry.facts import RolloutSpec, VersionInfo
from registry.serving.cache import ServableModel
from registry.serving.server import ModelServer

SIGNATURE = {"features": [{"name": "x", "dtype": "float64"}], "classes": None}


class AskedTheDatabase(Exception):
    """The server opened a session: what it was asked for was not in its snapshot."""


@contextmanager
def no_database():
    raise AskedTheDatabase()
    yield


class FakeLoader:
    """Makes a servable of any version at once and counts what it loaded; fails versions in ``broken``."""

    def __init__(self, broken=()):
        self.loaded: list[tuple[str, int]] = []
        self.broken = set(broken)
        self.written: list[ServableModel] = []  # loaded models whose mapped files were written since

    def __call__(self, info: VersionInfo) -> ServableModel:
        self.loaded.append((info.model, info.number))
        if info.number in self.broken:
            raise OSError(f"version {info.number} cannot be read")
        return ServableModel(info.model, info.number, info.sha256, info.task, Signature.from_dict(info.signature), None)

    def stamp(self, sha256: str) -> object:
        return sha256

    def changed(self, servable: ServableModel) -> bool:
        return servable in self.written


class ServedAliases(ModelServer):
    """A model server whose database holds the aliases in ``targets`` (one change marker)."""

    targets: dict = {}

    def _read_alias_targets(self):
        return dict(self.targets)


def info(number: int, model: str = "m") -> VersionInfo:
    return VersionInfo(model, number, f"sha-{number}", "regression", SIGNATURE)


@pytest.fixture
def loader():
    return FakeLoader()


@pytest.fixture
def server(loader):
    return ModelServer(loader, memory_budget_bytes=10**9, refresh_seconds=1.0, session_scope=no_database)


def test_a_committed_move_is_served_at_once_and_its_version_loaded_once(server, loader):
    server.apply([AliasServes("m", "production", info(1))])
    server.apply([AliasServes("m", "production", info(2)), AliasServes("m", "staging", info(2))])

    assert server.servable("m", "production").version == 2
    assert server.servable("m", "staging").version == 2
    assert loader.loaded == [("m", 1), ("m", 2)]


def test_a_committed_rollout_routes_by_its_share(server):
    spec = RolloutSpec(5, canary=info(2), canary_percent=100.0, shadow=info(3), shadow_percent=100.0, sticky_header="X-User")
    server.apply([AliasServes("m", "production", info(1), spec)])

    route = server.route("m", "production", {"X-User": "alice"})

    assert (route.servable.version, route.role, route.rollout_id, route.shadow.version) == (2, "canary", 5, 3)


def test_a_move_that_ends_a_rollout_sends_everything_to_the_primary(server):
    spec = RolloutSpec(5, canary=info(2), canary_percent=100.0, shadow=None, shadow_percent=None, sticky_header=None)
    server.apply([AliasServes("m", "production", info(1), spec)])
    server.apply([AliasServes("m", "production", info(2))])

    route = server.route("m", "production", {})

    assert (route.servable.version, route.role, route.rollout_id) == (2, "primary", None)


def test_a_deleted_alias_is_no_longer_served_from_the_snapshot(server):
    server.apply([AliasServes("m", "staging", info(1))])
    server.apply([AliasDeleted("m", "staging")])

    with pytest.raises(AskedTheDatabase):
        server.servable("m", "staging")


def test_a_retired_version_is_not_served_from_the_cache_any_more(server):
    server.load(info(2))
    assert server.servable("m", "2").version == 2  # from the cache, no database

    server.apply([VersionRetired("m", 2)])

    with pytest.raises(AskedTheDatabase):
        server.servable("m", "2")


def test_a_version_that_failed_to_load_is_not_read_again_during_its_backoff():
    loader = FakeLoader(broken={3})
    server = ModelServer(loader, memory_budget_bytes=10**9, refresh_seconds=60.0, session_scope=no_database)

    for _ in range(3):
        with pytest.raises(OSError):
            server.load(info(3))

    assert loader.loaded == [("m", 3)]


class ChangingRegistry(ModelServer):
    """A model server whose database is a change marker the test sets, with no aliases or rollouts."""

    marker = (1,)


@pytest.fixture
def changing(loader, monkeypatch):
    server = ChangingRegistry(loader, memory_budget_bytes=10**9, refresh_seconds=1.0, session_scope=nullcontext)
    for name, answer in {"change_marker": lambda: server.marker, "alias_targets": list, "active_rollouts": list,
                         "archived_versions": frozenset}.items():
        monkeypatch.setattr(f"registry.serving.server.lookups.{name}", answer)
    yield server
    server.stop()


def test_observers_hear_of_each_change_once_from_the_start_and_not_in_a_master_that_only_warms(changing):
    told = []
    changing.observe_changes(lambda: told.append(changing.marker))

    changing.refresh()  # gunicorn's master warming up before the fork: nothing to follow there
    assert told == []
    changing.start()
    changing.refresh()  # the registry did not change
    changing.marker = (2,)
    changing.refresh()
    changing.refresh()

    assert told == [(1,), (2,)]


def test_an_observer_that_failed_is_told_again_at_the_next_poll(changing):
    calls = []

    def flaky():
        calls.append(len(calls))
        if len(calls) == 1:
            raise OSError("the database went away")

    changing.observe_changes(flaky)
    changing.start()
    changing.refresh()
    changing.refresh()

    assert calls == [0, 1]


def test_a_model_whose_mapped_files_were_written_is_loaded_again_at_the_next_poll(loader, monkeypatch):
    for name, answer in {"change_marker": lambda: (1,), "active_rollouts": list, "archived_versions": frozenset}.items():
        monkeypatch.setattr(f"registry.serving.server.lookups.{name}", answer)
    server = ServedAliases(loader, memory_budget_bytes=10**9, refresh_seconds=1.0, session_scope=nullcontext)
    server.targets = {("m", "production"): info(1)}
    server.refresh()
    pinned = server.load(info(2))
    damaged = server.servable("m", "production")
    server.refresh()
    assert loader.loaded == [("m", 1), ("m", 2)]  # nothing written: nothing loaded again

    loader.written += [damaged, pinned]
    server.refresh()

    assert loader.loaded == [("m", 1), ("m", 2), ("m", 1)]
    assert server.servable("m", "production") is not damaged
    assert server.load(info(2)) is not pinned  # dropped from the cache: loaded again when asked
    assert loader.loaded[-1] == ("m", 2)
