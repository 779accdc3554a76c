"""What a worker starts on its first request (its alias watcher, background loops, webhook deliverer).

Each start is registered here once, at app creation, and run before every request, whichever path
answers it (Flask's hooks, or the predict fast path): once a start has run it is a flag check.
"""
from collections.abc import Callable

from flask import Flask

EXTENSION = "worker_starts"


def init_app(app: Flask) -> None:
    """Run the starts registered with :func:`add` before each of ``app``'s requests."""
    app.extensions[EXTENSION] = []
    app.before_request(lambda: run(app))


def add(app: Flask, start: Callable[[], None]) -> None:
    """Have ``start`` run before ``app``'s requests (it returns at once once it has started)."""
    app.extensions[EXTENSION].append(start)


def run(app: Flask) -> None:
    """Run every start of ``app``."""
    for start in app.extensions[EXTENSION]:
        start()
