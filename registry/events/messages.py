"""What a webhook attempt sends and what it comes to (``registry.events.sending`` makes the attempt)."""
from dataclasses import dataclass

RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Message:
    """What is sent: the event's stable id (webhook-id), its JSON body, where, and the signing secrets
    (two during a secret's rotation)."""

    msg_id: str
    body: str
    url: str
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the receiver's status code, or why there was none."""

    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after_seconds: float | None = None  # what the receiver asked for (Retry-After), if anything

    @property
    def delivered(self) -> bool:
        """A 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Network errors, timeouts, 408, 429 and 5xx are worth another try; other answers are final."""
        code = self.status_code
        return code is None or code in RETRYABLE_STATUSES or code >= 500
