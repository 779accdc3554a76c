"""A rollout as the database says it, copied out of its row so it can be loaded outside the session."""
from dataclasses import dataclass

from registry.rollouts.routing import Arm, LiveRollout
from registry.serving.cache import VersionInfo
from registry.tables import Rollout


@dataclass(frozen=True)
class RolloutSpec:
    """A rollout as the database says it, read while a session is open (nothing loaded yet)."""

    id: int
    canary: VersionInfo | None
    canary_percent: float | None
    shadow: VersionInfo | None
    shadow_percent: float | None
    sticky_header: str | None

    @classmethod
    def of(cls, row: Rollout) -> "RolloutSpec":
        """Copy a rollout's settings out of its ORM row."""
        canary = VersionInfo.of(row.canary) if row.canary is not None else None
        shadow = VersionInfo.of(row.shadow) if row.shadow is not None else None
        return cls(row.id, canary, row.canary_percent, shadow, row.shadow_percent, row.sticky_header)

    def matches(self, live: LiveRollout) -> bool:
        """Whether ``live`` serves exactly this rollout already."""
        def same(arm: Arm | None, info: VersionInfo | None, percent: float | None) -> bool:
            if arm is None or info is None:
                return arm is None and info is None
            return arm.servable.version == info.number and arm.percent == percent

        return (live.id == self.id and live.sticky_header == self.sticky_header
                and same(live.canary, self.canary, self.canary_percent)
                and same(live.shadow, self.shadow, self.shadow_percent))
