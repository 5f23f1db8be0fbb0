"""Guard verdicts for a dry run outside the daemon (`cdnops playbook test`)."""

from __future__ import annotations

from typing import Any

from cdnops.config.remediate import RemediateConfig
from cdnops.incidents.model import Incident
from cdnops.remediate.guards import Verdict, capacity_check
from cdnops.remediate.incidentfile import Sample
from cdnops.remediate.loader import CompiledPlaybook
from cdnops.remediate.templates import TemplateError

NO_HISTORY = "not evaluated: a test has no execution history"


def guard_verdicts(pb: CompiledPlaybook, inc: Incident, ctx: dict[str, Any]) -> list[Verdict]:
    """The daemon's guards in their order; those that need history say so."""
    return [
        Verdict(
            "inhibition", inc.parent is None, f"inhibited by {inc.parent}" if inc.parent else ""
        ),
        Verdict(
            "silence",
            inc.silenced_by is None,
            f"silenced by {inc.silenced_by}" if inc.silenced_by else "",
        ),
        _conditions(pb, ctx),
        Verdict("breaker", True, NO_HISTORY),
        Verdict("appliance_busy", True, NO_HISTORY),
        Verdict("cooldown", True, NO_HISTORY),
        Verdict("concurrency", True, NO_HISTORY),
        Verdict("rate_limit", True, NO_HISTORY),
    ]


def _conditions(pb: CompiledPlaybook, ctx: dict[str, Any]) -> Verdict:
    for expr in pb.conditions:
        try:
            if not expr.evaluate(ctx):
                return Verdict("conditions", False, f"{expr.source} is false")
        except TemplateError as exc:
            return Verdict("conditions", False, str(exc))
    return Verdict("conditions", True, f"{len(pb.conditions)} hold" if pb.conditions else "")


def capacity_verdict(sample: Sample, config: RemediateConfig) -> Verdict:
    """The capacity rail on the sample's site (the fleet-wide cap needs the live fleet: not
    evaluated here)."""
    live = sample.appliance
    serving = live.get("state", "serving") == "serving" and live.get("reachable", True)
    site = sample.incident.site or "?"
    if not serving:
        return Verdict("capacity", True, "already out of service")
    n, down = sample.site.appliances, sample.site.unavailable
    return capacity_check(
        config.capacity,
        site=site,
        site_n=n,
        site_serving_after=n - down - 1,
        fleet_n=n,
        fleet_unavailable_after=0,
    )
