"""Which version answers an alias request: a pure function of the alias snapshot and the request.

A request with the rollout's sticky key goes to the canary when a stable hash of
``(model, alias, key)`` falls below the canary's percent, so every worker and replica sends
the same key to the same version without talking to the others. A request without a key is
routed at random with the same odds. The shadow sample is drawn at random either way.
"""
import hashlib
from dataclasses import dataclass

from registry.serving.cache import ServableModel
from registry.serving.key_units import NO_KEY

PRIMARY, CANARY, SHADOW = "primary", "canary", "shadow"
_HASH_SPACE = float(2**64)


@dataclass(frozen=True)
class Arm:
    """A version taking part in a rollout, loaded, and the share of alias requests it gets."""

    servable: ServableModel
    percent: float


@dataclass(frozen=True)
class LiveRollout:
    """A rollout as a process serves it: every version it names is loaded already."""

    id: int
    canary: Arm | None
    shadow: Arm | None
    sticky_header: str | None
    mirror: bool = False  # canary requests run on the primary too, after the answer
    started_at: float | None = None  # seconds since the epoch, as the database says
    epoch: float | None = None  # names the split: changes whenever the shares or the plan's step change


@dataclass(frozen=True)
class AliasState:
    """What an alias is served with in this process: its primary version and any rollout on it."""

    primary: ServableModel
    rollout: LiveRollout | None = None


@dataclass(frozen=True)
class Route:
    """Where one request goes: the model that answers, as which role, and any shadow to run after."""

    servable: ServableModel
    role: str | None  # None for a pinned version, which is never routed
    rollout_id: int | None = None
    shadow: ServableModel | None = None
    mirror: ServableModel | None = None  # the primary, to run a canary request's rows again and compare
    unit: str | None = None  # under a sticky header, the request's key (NO_KEY without one): the experiment's unit
    epoch: float | None = None  # the rollout's split the request was routed in


def key_share(model: str, alias: str, key: str) -> float:
    """Where a sticky key falls in [0, 100): the same on every process, for ever."""
    digest = hashlib.sha256(f"{model}\x00{alias}\x00{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPACE * 100.0


def route(state: AliasState, *, model: str, alias: str, key: str | None, draws: tuple[float, float]) -> Route:
    """The route of one alias request; ``draws`` are two uniform numbers in [0, 1) (canary, shadow)."""
    rollout = state.rollout
    if rollout is None:
        return Route(state.primary, PRIMARY)
    canary_draw, shadow_draw = draws
    served, role = state.primary, PRIMARY
    if rollout.canary is not None:
        share = key_share(model, alias, key) if key is not None else canary_draw * 100.0
        if share < rollout.canary.percent:
            served, role = rollout.canary.servable, CANARY
    shadow = rollout.shadow
    takes_shadow = shadow is not None and shadow_draw * 100.0 < shadow.percent
    mirror = state.primary if role == CANARY and rollout.mirror else None
    unit = (key if key is not None else NO_KEY) if rollout.sticky_header is not None else None
    return Route(served, role, rollout.id, shadow.servable if takes_shadow else None, mirror, unit, rollout.epoch)
