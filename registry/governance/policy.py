"""What a protected alias's policy says, read from its stored document, and which of its rules a move meets."""
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from registry.errors import InvalidInput

CARD_FIELDS = ("description", "intended_use", "limitations")
DEFAULT_MOVERS = ("admin", "ci")  # who may move an unprotected alias today
DEFAULT_REQUEST_HOURS = 72
MAX_APPROVALS = 10
# The name the rollout controller moves aliases under (the actor of its history entries).
CONTROLLER = "autopilot"


@dataclass(frozen=True)
class EvaluationRule:
    """The candidate's latest evaluation on ``dataset`` (a name or a sha256) must beat the served
    version's on the same rows by ``margin`` in ``metric``."""

    dataset: str
    metric: str
    margin: float = 0.0
    higher_is_better: bool | None = None  # None: from the metric's name (errors and losses: lower)


@dataclass(frozen=True)
class Freeze:
    """An interval in which the alias does not move (but by break-glass)."""

    start: datetime
    until: datetime
    reason: str = ""

    def covers(self, moment: datetime) -> bool:
        """Whether ``moment`` falls in the window."""
        return self.start <= moment < self.until


@dataclass(frozen=True)
class Policy:
    """A protected alias's rules: who moves it, what a version must show, how many approve, and when not."""

    mover_roles: tuple[str, ...] = DEFAULT_MOVERS
    mover_tokens: tuple[str, ...] = ()
    mover_groups: tuple[str, ...] = ()  # the single sign-on provider's groups (people, never tokens)
    approvals: int = 0
    evaluation: EvaluationRule | None = None
    card: tuple[str, ...] = ()
    compatible_signature: bool = False
    rollout: bool = False
    freeze: tuple[Freeze, ...] = field(default_factory=tuple)
    request_hours: int = DEFAULT_REQUEST_HOURS

    @classmethod
    def of(cls, document: dict) -> "Policy":
        """The policy a stored (or API-checked) document describes; InvalidInput for rules that cannot hold."""
        movers, require = document.get("movers") or {}, document.get("require") or {}
        evaluation = require.get("evaluation")
        freeze = tuple(Freeze(_utc(window["from"]), _utc(window["until"]), window.get("reason", ""))
                       for window in document.get("freeze") or ())
        for index, window in enumerate(freeze):
            if window.until <= window.start:
                raise InvalidInput(f"freeze window {index} ends before it starts; give 'until' after 'from'",
                                   errors={"freeze": {str(index): ["'until' must be after 'from'"]}})
        policy = cls(
            mover_roles=tuple(movers.get("roles", DEFAULT_MOVERS)),
            mover_tokens=tuple(movers.get("tokens", ())),
            mover_groups=tuple(movers.get("groups", ())),
            approvals=document.get("approvals", 0),
            evaluation=EvaluationRule(**evaluation) if evaluation else None,
            card=tuple(require.get("card", ())),
            compatible_signature=require.get("compatible_signature", False),
            rollout=require.get("rollout", False),
            freeze=freeze,
            request_hours=document.get("request_hours", DEFAULT_REQUEST_HOURS),
        )
        if not policy.mover_roles and not policy.mover_tokens and not policy.mover_groups:
            raise InvalidInput("nobody could move the alias: name at least one role, token or group in 'movers'",
                               errors={"movers": ["name at least one role, token or group"]})
        return policy

    def document(self) -> dict:
        """The policy as stored and shown (times as ISO 8601 in UTC)."""
        require: dict = {}
        if self.evaluation is not None:
            require["evaluation"] = {
                "dataset": self.evaluation.dataset, "metric": self.evaluation.metric, "margin": self.evaluation.margin,
                "higher_is_better": self.evaluation.higher_is_better,
            }
        if self.card:
            require["card"] = list(self.card)
        if self.compatible_signature:
            require["compatible_signature"] = True
        if self.rollout:
            require["rollout"] = True
        movers = {"roles": list(self.mover_roles), "tokens": list(self.mover_tokens)}
        if self.mover_groups:  # shown only when named, so policies without groups read (and hash) as before
            movers["groups"] = list(self.mover_groups)
        return {
            "movers": movers,
            "approvals": self.approvals,
            "require": require,
            "freeze": [{"from": _iso(w.start), "until": _iso(w.until), "reason": w.reason} for w in self.freeze],
            "request_hours": self.request_hours,
        }

    def may_move(self, actor: str, role: str | None, groups: tuple[str, ...] = ()) -> bool:
        """Whether ``actor`` (a token's name, or a signed-in person's; of ``role``, None for the registry's own
        controller; a person in ``groups``) may move the alias."""
        return (actor in self.mover_tokens or (role is not None and role in self.mover_roles)
                or any(group in self.mover_groups for group in groups))

    def frozen_at(self, moment: datetime) -> Freeze | None:
        """The freeze window ``moment`` falls in, if any."""
        return next((window for window in self.freeze if window.covers(moment)), None)

    def request_lifetime(self) -> timedelta:
        """How long a request to move the alias stays open."""
        return timedelta(hours=self.request_hours)


def stored(document: dict) -> dict:
    """A checked document in the form kept in the database (JSON: times as text)."""
    return Policy.of(document).document()


def parsed(document: dict) -> Policy:
    """The policy of a stored document (its times are ISO 8601 text)."""
    return Policy.of({**document, "freeze": [
        {**window, "from": datetime.fromisoformat(window["from"]), "until": datetime.fromisoformat(window["until"])}
        for window in document.get("freeze") or ()
    ]})


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # an offset that takes the instant past year 1 or 9999
        raise InvalidInput(f"freeze instant {moment.isoformat()} is outside the years 1 to 9999 in UTC",
                           errors={"freeze": ["an instant outside the years 1 to 9999 in UTC"]}) from None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
