"""What every alias serves in this process, as one immutable value: a new snapshot replaces the old
whole, so a request reads one consistent state without a lock and never sees a half-made one."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from registry.facts import RolloutSpec, VersionInfo
from registry.serving.cache import ServableModel
from registry.serving.routing import AliasState, Arm, LiveRollout

AliasKey = tuple[str, str]  # (model name, alias name)


@dataclass(frozen=True)
class AliasSnapshot:
    """Each alias's state (its primary and rollout, loaded) and the versions archived when it was made."""

    aliases: Mapping[AliasKey, AliasState] = field(default_factory=lambda: MappingProxyType({}))
    archived: frozenset[tuple[str, int]] = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "aliases", MappingProxyType(dict(self.aliases)))

    def get(self, key: AliasKey) -> AliasState | None:
        """The alias's state; None when this snapshot does not serve it."""
        return self.aliases.get(key)

    def serving(self, key: AliasKey, state: AliasState | None) -> AliasSnapshot:
        """This snapshot with ``key`` served by ``state`` (None: not served)."""
        aliases = {k: v for k, v in self.aliases.items() if k != key}
        if state is not None:
            aliases[key] = state
        return AliasSnapshot(aliases, self.archived)

    def servables(self) -> list[ServableModel]:
        """Every loaded model it serves: primaries and rollout arms."""
        found = []
        for state in self.aliases.values():
            found.append(state.primary)
            rollout = state.rollout
            for arm in (rollout.canary, rollout.shadow) if rollout is not None else ():
                if arm is not None:
                    found.append(arm.servable)
        return found

    def versions(self) -> set[tuple[str, int]]:
        """(model, version) of every version it serves."""
        return {(servable.model, servable.version) for servable in self.servables()}


def serves(live: LiveRollout, spec: RolloutSpec) -> bool:
    """Whether ``live`` serves exactly the rollout ``spec`` describes already."""
    def same(arm: Arm | None, info: VersionInfo | None, percent: float | None) -> bool:
        if arm is None or info is None:
            return arm is None and info is None
        return arm.servable.version == info.number and arm.percent == percent

    return (live.id == spec.id and live.sticky_header == spec.sticky_header and live.mirror == spec.mirror
            and live.epoch == spec.epoch
            and same(live.canary, spec.canary, spec.canary_percent)
            and same(live.shadow, spec.shadow, spec.shadow_percent))
