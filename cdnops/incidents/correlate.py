"""Site and fleet grouping: which families affect enough members to become one incident."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from cdnops.config.incidents import CorrelationConfig
from cdnops.incidents.model import FLEET_SUBJECT, Incident, Key, Scope


def qualifies(affected: int, size: int, cfg: CorrelationConfig) -> bool:
    """At least `min_members`, and either `min_share` of `size` or `min_count` members."""
    if affected < cfg.min_members:
        return False
    return affected >= cfg.min_count or affected >= cfg.min_share * size


class Symptoms:
    """When each appliance last showed each family, by site key (site, kind, family).

    Fed from the active anomalies of every tick (appliances that may have incidents
    only); entries older than the grouping window are pruned, so its size follows the
    number of active anomalies.
    """

    def __init__(self) -> None:
        self._seen: dict[Key, dict[str, float]] = {}

    def note(self, key: Key, appliance: str, now: float) -> None:
        """`appliance` shows `key`'s family now."""
        self._seen.setdefault(key, {})[appliance] = now

    def prune(self, since: float) -> None:
        """Forget what was last seen before `since`."""
        for key in list(self._seen):
            members = self._seen[key]
            stale = [a for a, ts in members.items() if ts < since]
            for a in stale:
                del members[a]
            if not members:
                del self._seen[key]

    def members(self) -> dict[Key, tuple[str, ...]]:
        """Every site key with the appliances that showed it (call `prune` first)."""
        return {key: tuple(sorted(m)) for key, m in self._seen.items()}

    def active(self, key: Key, now: float) -> bool:
        """Whether some appliance shows `key`'s family at `now`."""
        return any(ts >= now for ts in self._seen.get(key, {}).values())


def fleet_members(site_incidents: Iterable[Incident], since: float) -> dict[Key, tuple[str, ...]]:
    """Fleet keys with the sites whose site incident of that family was seen since `since`."""
    affected: dict[Key, list[str]] = defaultdict(list)
    for inc in site_incidents:
        if inc.active or inc.last_seen_ts >= since:
            affected[Key(Scope.FLEET, FLEET_SUBJECT, inc.kind, inc.family)].append(inc.subject)
    return {key: tuple(sorted(sites)) for key, sites in affected.items()}
