"""The one exception family the client raises: every failure is a :class:`RegistryError`."""
from __future__ import annotations


class RegistryError(Exception):
    """The registry refused a request or could not be reached.

    ``status`` is the HTTP status (None when no answer came) and ``problem`` the problem+json body
    it answered with (``type``, ``title``, ``status``, ``detail``, ``errors``), empty when it had none.
    """

    def __init__(self, message: str, status: int | None = None, problem: dict | None = None):
        super().__init__(message)
        self.status = status
        self.problem = problem or {}

    @property
    def detail(self) -> str:
        """What the registry said to change (the problem's ``detail``, else its ``title``), or the message."""
        return str(self.problem.get("detail") or self.problem.get("title") or self)


class RegistryUnreachable(RegistryError):
    """Connection refused, unknown host, a TLS failure or no answer within the timeout."""


class TokenRejected(RegistryError):
    """The registry answered 401 or 403 to our token."""
