"""Request ids: every answer carries ``X-Request-ID``, the caller's when it sent a sane one (1 to 128
printable ASCII characters, no leading or trailing space), else a new UUID. A caller (or a proxy in
front) that sends its own can find its requests again; one that does not learns the id it may quote.
"""
import random
import re
import uuid

from flask import Flask, Response, request

HEADER = "X-Request-ID"
MAX_LENGTH = 128
_SANE = re.compile(rf"[!-~](?:[ -~]{{0,{MAX_LENGTH - 2}}}[!-~])?")
_ENVIRON_KEY = "registry.request_id"


def current() -> str:
    """This request's id: the caller's if sane, else one made now (the same for the whole request)."""
    return of_environ(request.environ)


def of_environ(environ: dict) -> str:
    """The id of the request ``environ`` describes (kept in it, so every path that answers it agrees)."""
    found = environ.get(_ENVIRON_KEY)
    if found is None:
        given = environ.get("HTTP_X_REQUEST_ID", "")
        found = environ[_ENVIRON_KEY] = given if _SANE.fullmatch(given) else _new_id()
    return found


def init_app(app: Flask) -> None:
    """Send ``X-Request-ID`` on every response of ``app``, errors included."""

    @app.after_request
    def add_request_id(response: Response) -> Response:
        response.headers[HEADER] = current()
        return response


def _new_id() -> str:
    """A random UUID (version 4) from the process's own generator: no system call per request, and
    Python reseeds it in every forked worker, so workers never repeat each other's ids."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))
