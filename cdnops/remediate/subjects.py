"""Runs without an incident (scheduled, manual): their subjects and the stand-in incident.

A scheduled or manual execution still reads `incident.*` in its templates and goes
through the guards that look at an incident (inhibition, silences), so it gets a
stand-in: id `schedule:<subject>` or `manual:<subject>`, family and metric `schedule`
or `manual`, the appliance's site and labels, inhibited by an open site (fleet)
incident over its site, silenced by a silence that covers it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from cdnops.incidents.model import (
    FLEET_SUBJECT,
    Incident,
    IncidentKind,
    Key,
    Scope,
    Severity,
)
from cdnops.incidents.silences import Silences
from cdnops.remediate.context import FrameIndex
from cdnops.remediate.loader import CompiledPlaybook


def scheduled_subjects(pb: CompiledPlaybook, fi: FrameIndex) -> list[str]:
    """What one firing acts on, in inventory order: each appliance (site) the trigger's
    `site` and `labels` select, or `fleet`, by the trigger's scope."""
    t = pb.playbook.trigger
    out: list[str] = []
    if "appliance" in t.scope:
        out.extend(a.id for a in fi.frame.inventory.appliances if _selects(pb, a.site, a.labels))
    if "site" in t.scope and not t.labels:
        out.extend(s for s in fi.frame.sites if _selects(pb, s, {}))
    if "fleet" in t.scope and t.site is None and not t.labels:
        out.append(FLEET_SUBJECT)
    return out


def subject_problem(pb: CompiledPlaybook, fi: FrameIndex, subject: str) -> str | None:
    """Why `pb` cannot run on `subject` (None: it can), for an operator's manual run."""
    scope = scope_of(fi, subject)
    name = pb.name
    if scope is None:
        return f'unknown appliance "{subject}": it is not in the latest poll'
    if str(scope) not in pb.playbook.trigger.scope:
        scopes = " or ".join(pb.playbook.trigger.scope)
        return f'playbook "{name}" runs on scope {scopes}, and "{subject}" is a {scope}'
    site = _site(fi, subject, scope)
    labels = _labels(fi, subject)
    if not _selects(pb, site, labels):
        return f'playbook "{name}" does not apply to {subject}: its trigger selects other ' + (
            "sites or labels"
        )
    return None


def scope_of(fi: FrameIndex, subject: str) -> Scope | None:
    """Whether `subject` names an appliance, a site or the fleet in the latest frame."""
    if subject in fi.rows:
        return Scope.APPLIANCE
    if subject in fi.frame.sites:
        return Scope.SITE
    if subject == FLEET_SUBJECT:
        return Scope.FLEET
    return None


def stand_in(
    fi: FrameIndex,
    subject: str,
    origin: str,
    now: float,
    *,
    open_incidents: Iterable[Incident],
    silences: Silences | None,
) -> Incident:
    """The incident a scheduled or manual run of `subject` carries (see the module doc)."""
    scope = scope_of(fi, subject) or Scope.APPLIANCE
    site = _site(fi, subject, scope)
    inc = Incident(
        id=f"{origin}:{subject}",
        key=Key(scope, subject, IncidentKind.METRIC, origin),
        site=site,
        metric=origin,
        severity=Severity.WARNING,
        opened_ts=now,
        first_seen_ts=now,
        last_seen_ts=now,
        labels=_labels(fi, subject),
    )
    inc.parent = _inhibitor(scope, site, open_incidents)
    silence = silences.match(inc, now) if silences is not None else None
    inc.silenced_by = silence.id if silence is not None else None
    return inc


def _inhibitor(scope: Scope, site: str, open_incidents: Iterable[Incident]) -> str | None:
    """An open site incident over the appliance's site, or a fleet one over the site."""
    for other in open_incidents:
        if other.scope is Scope.SITE and scope is Scope.APPLIANCE and other.site == site:
            return other.id
        covers = not other.members or site in other.members
        if other.scope is Scope.FLEET and scope is not Scope.FLEET and covers:
            return other.id
    return None


def _selects(pb: CompiledPlaybook, site: str, labels: Mapping[str, str]) -> bool:
    t = pb.playbook.trigger
    if t.site is not None and not any(fnmatchcase(site, p) for p in t.site):
        return False
    return all(labels.get(k) == v for k, v in t.labels.items())


def _site(fi: FrameIndex, subject: str, scope: Scope) -> str:
    if scope is Scope.APPLIANCE:
        appliance = fi.appliance(subject)
        return appliance.site if appliance is not None else ""
    return subject if scope is Scope.SITE else ""


def _labels(fi: FrameIndex, subject: str) -> dict[str, str]:
    appliance = fi.appliance(subject)
    return dict(appliance.labels) if appliance is not None else {}
