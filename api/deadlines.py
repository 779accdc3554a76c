"""A caller's deadline: ``X-Request-Timeout: <seconds>`` on a prediction, counted from when the request
reached the worker (gunicorn's worker notes that in the environ, ``deploy/gthread_worker.py``; under
another server, from the moment the app first saw it). The data plane refuses a prediction whose
deadline passed before it could start (503 with Retry-After, nothing computed). A value that is not a
positive decimal number of seconds is 400.
"""
import re
import time

from api.errors import ProblemError
from registry.serving.admission import Deadline

# The WSGI environ key of a request's arrival, on time.monotonic()'s clock: the server's worker sets it
# (deploy/gthread_worker.py), else the app does when it first sees the request.
ARRIVED = "registry.arrived"
HEADER = "X-Request-Timeout"
_ENVIRON_HEADER = "HTTP_X_REQUEST_TIMEOUT"
DECIMAL = re.compile(r"[0-9]{1,12}(\.[0-9]{0,9})?|\.[0-9]{1,9}")


def of_environ(environ: dict) -> Deadline | None:
    """The deadline of the request ``environ`` describes; None without the header, a
    :class:`ProblemError` (400) when its value is not a positive number of seconds."""
    given = environ.get(_ENVIRON_HEADER)
    if given is None:
        return None
    value = given.strip()
    seconds = float(value) if DECIMAL.fullmatch(value) else 0.0
    if seconds <= 0:
        raise ProblemError(400, f"{HEADER} must be a positive number of seconds, such as 2 or 0.25, "
                                f"not {given[:40]!r}; leave it out to wait as long as it takes")
    return Deadline(arrived(environ), seconds)


def arrived(environ: dict) -> float:
    """When the request reached the worker (``time.monotonic()``): noted at once when the server did not."""
    return environ.setdefault(ARRIVED, time.monotonic())
