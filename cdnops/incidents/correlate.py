"""Site and fleet grouping: which families affect enough members to become one incident."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from cdnops.config.incidents import CorrelationConfig
from cdnops.incidents.model import FLEET_SUBJECT, Incident, Key, Scope


def qualifies(affected: int, size: int, cfg: CorrelationConfig) -> bool:
    """At least `min_members`, and either `min_share` of `size` or `min_count` members."""
    if affected < cfg.min_members:
        return False
    return affected >= cfg.min_count or affected >= cfg.min_share * size


def recently_seen(inc: Incident, now: float, window_s: float) -> bool:
    """Active now, or seen within the grouping window."""
    return inc.active or inc.last_seen_ts >= now - window_s


def site_groups(
    appliance_incidents: Iterable[Incident],
    site_sizes: Mapping[str, int],
    cfg: CorrelationConfig,
    window_s: float,
    now: float,
) -> dict[Key, tuple[str, ...]]:
    """Site keys whose family affects enough of the site's appliances, with those appliances.

    `site_sizes` counts the appliances that can have incidents (not drained, not in
    maintenance), so a half-drained site needs fewer affected ones.
    """
    affected: dict[Key, list[str]] = defaultdict(list)
    for inc in appliance_incidents:
        if recently_seen(inc, now, window_s):
            affected[Key(Scope.SITE, inc.site, inc.kind, inc.family)].append(inc.subject)
    return {
        key: tuple(sorted(members))
        for key, members in affected.items()
        if qualifies(len(members), site_sizes.get(key.subject, 0), cfg)
    }


def fleet_groups(
    site_incidents: Iterable[Incident],
    n_sites: int,
    cfg: CorrelationConfig,
    window_s: float,
    now: float,
) -> dict[Key, tuple[str, ...]]:
    """Fleet keys whose family has open site incidents in enough sites, with those sites."""
    affected: dict[Key, list[str]] = defaultdict(list)
    for inc in site_incidents:
        if recently_seen(inc, now, window_s):
            affected[Key(Scope.FLEET, FLEET_SUBJECT, inc.kind, inc.family)].append(inc.subject)
    return {
        key: tuple(sorted(sites))
        for key, sites in affected.items()
        if qualifies(len(sites), n_sites, cfg)
    }


def parent_key(inc: Incident) -> Key | None:
    """The key of the incident one level up that would absorb `inc`."""
    if inc.scope is Scope.APPLIANCE:
        return Key(Scope.SITE, inc.site, inc.kind, inc.family)
    if inc.scope is Scope.SITE:
        return Key(Scope.FLEET, FLEET_SUBJECT, inc.kind, inc.family)
    return None
