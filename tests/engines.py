"""One SQLAlchemy engine per test database for the whole run, instead of one per app.

An engine keeps the SQL it compiled in a cache of its own, keyed by its dialect: a new engine
compiles every statement again. Each test builds a fresh app, so it paid a cold cache, about a
fifth of a typical test's time. The database each test gets has the same URL on every test (the
PostgreSQL database emptied in place, the SQLite file restored in place), so the apps of the run can
share its engine and its warm cache. Apps still get their own session, server and artifact root.

Flask-SQLAlchemy 3.1 creates every engine in ``SQLAlchemy._make_engine`` (pinned in
requirements-dev.txt); the block reroutes that call for the URL it was given.
"""
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import Engine, make_url

from registry.db import db


class SharedEngines:
    """Engines of the shared URL (one per set of engine options), made for the first app that asks."""

    def __init__(self, url: str):
        self._url = _plain(url)
        self._engines: dict[str, Engine] = {}

    def wrap(self, make_engine):
        """``make_engine`` that hands out the one engine of the shared URL and these options."""

        def make(bind_key, options, app):
            if _plain(options["url"]) != self._url:
                return make_engine(bind_key, options, app)
            key = repr(sorted((name, value) for name, value in options.items() if name != "url"))
            if key not in self._engines:
                self._engines[key] = make_engine(bind_key, options, app)
            return self._engines[key]

        return make

    def holds(self, engine: Engine) -> bool:
        """Whether ``engine`` is one of the shared ones."""
        return engine in self._engines.values()

    def disconnect(self) -> None:
        """Close every pooled connection (the next use opens new ones; the compiled SQL stays)."""
        for engine in self._engines.values():
            engine.dispose()


_active: list[SharedEngines] = []


def release(engine: Engine) -> None:
    """An app is done with ``engine``: a shared one keeps its connections for the next test."""
    if not any(shared.holds(engine) for shared in _active):
        engine.dispose()


def _plain(url) -> str:
    return make_url(url).render_as_string(hide_password=False)


@contextmanager
def shared_engines(url: str) -> Iterator[SharedEngines]:
    """Within the block, apps on ``url`` with the same engine options share one engine."""
    engines = SharedEngines(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "_make_engine", engines.wrap(db._make_engine))
        _active.append(engines)
        try:
            yield engines
        finally:
            _active.remove(engines)
            engines.disconnect()
