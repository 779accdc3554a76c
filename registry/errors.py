"""Domain errors, defined once. The API maps each class to an HTTP status in one table."""
from collections.abc import Sequence

# An error names at most this many of the things it found wrong (names, fields, messages), then counts the
# rest: what a caller sent may hold thousands, and the answer must stay small (api/errors.py bounds the rest).
ECHOED = 5


def listed(items: Sequence, *, shown: int = ECHOED) -> str:
    """``items`` for an error's detail: the first ``shown``, comma-separated, then how many more
    (``a, b, c, d, e and 4,995 more``)."""
    head = ", ".join(str(item) for item in items[:shown])
    return head if len(items) <= shown else f"{head} and {len(items) - shown:,} more"



class RegistryError(Exception):
    """Base of every error the registry raises on purpose.

    ``detail`` tells the caller what to change; ``errors`` optionally carries per-field messages.
    """

    def __init__(self, detail: str, errors: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class NotFound(RegistryError):
    """A model, version, alias or token that does not exist."""


class ModelNotFound(NotFound):
    """No model of that name."""


class VersionNotFound(NotFound):
    """No such version (or alias) of an existing model."""


class AliasNotFound(NotFound):
    """No alias of that name on an existing model."""


class TokenNotFound(NotFound):
    """No token of that name."""


class Conflict(RegistryError):
    """The request conflicts with the current state (e.g. archiving an aliased version)."""


class VersionArchived(RegistryError):
    """The version exists but is archived."""


class InvalidInput(RegistryError):
    """Well-formed but invalid input (names, metadata, prediction rows)."""


class NotExplainable(InvalidInput):
    """An explanation asked of a version that cannot give one; the message says why."""


class InvalidArtifact(InvalidInput):
    """An uploaded file that is not a supported, fitted, safely loadable scikit-learn model."""


class UnsafeArtifact(InvalidArtifact):
    """An uploaded file that asks to import something outside the allow-list."""


class ArtifactTooLarge(InvalidArtifact):
    """An uploaded file that unpacks to more bytes or objects than the configured bounds."""


class BatchTooLarge(RegistryError):
    """A prediction batch over the configured row limit."""


class ArtifactCorrupted(RegistryError):
    """A stored artifact whose bytes no longer match its sha256. Always a server-side problem."""


class ArtifactMissing(ArtifactCorrupted):
    """A version's artifact is not in the store at all (deleted, or the store was restored without it)."""


class StoreFull(RegistryError):
    """The artifact store has no room left (ENOSPC, EDQUOT): an operator must free or add space."""


class StoreUnavailable(RegistryError):
    """The artifact store cannot be read or written right now (read-only, permissions, a disk or an
    object store that does not answer): it may pass, so callers are told when to retry."""


class NotFetchedYet(StoreUnavailable):
    """An artifact that is not in this machine's node cache, asked for where it may not be fetched
    (gunicorn's master warming models before it forks: the workers fetch it)."""


class CallerGone(RegistryError):
    """The caller went away (its connection closed, or its deadline passed) before what it asked for was
    committed: nothing was."""


class DatabaseFileGone(RegistryError):
    """The SQLite database file was deleted or replaced while the server ran: nothing may be written to it."""


class Unauthorized(RegistryError):
    """Missing or unknown bearer token."""


class Forbidden(RegistryError):
    """The token's role does not allow the operation."""


class RolloutNotFound(NotFound):
    """No rollout is active on the alias."""


class PolicyNotFound(NotFound):
    """The alias has no policy: it is not protected."""


class RequestNotFound(NotFound):
    """No approval request with that id on that alias."""


class SubscriptionNotFound(NotFound):
    """No webhook subscription with that id."""


class DeliveryNotFound(NotFound):
    """No delivery with that id for that webhook subscription."""


class PolicyRefused(Conflict):
    """A move of a protected alias that its policy does not allow (yet): ``missing`` lists each unmet rule
    as ``{"rule", "detail"}``, for a machine to read."""

    def __init__(self, detail: str, missing: list[dict]):
        super().__init__(detail)
        self.missing = missing


class Overloaded(RegistryError):
    """A prediction refused for want of capacity or time (before any of it ran, or an explanation given up at its
    deadline), not for anything the model or the caller's rows did: ``reason`` names which bound (for counting),
    ``retry_after`` says when to try again."""

    reason = "overloaded"

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after


class ModelBusy(Overloaded):
    """The model has as many predictions in flight in this process as it may (MAX_IN_FLIGHT_PER_MODEL)."""

    reason = "model_busy"


class WorkerBusy(Overloaded):
    """This process has as many predictions in flight as it takes, all models together (MAX_IN_FLIGHT)."""

    reason = "worker_busy"


class DeadlinePassed(Overloaded):
    """The caller's deadline (X-Request-Timeout) passed before the prediction could start."""

    reason = "deadline"


class ExplanationTimedOut(Overloaded):
    """An explanation stopped when its deadline passed (the caller's X-Request-Timeout, or EXPLAIN_TIMEOUT_SECONDS):
    its work was given up and its thread freed, and nothing of it was answered."""

    reason = "explain_deadline"
