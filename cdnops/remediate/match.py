"""Incident -> playbooks: pure matching of a trigger against an incident."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from cdnops.incidents.model import Incident
from cdnops.remediate.loader import CompiledPlaybook
from cdnops.remediate.schema import Trigger


def trigger_matches(t: Trigger, inc: Incident) -> bool:
    """Whether every matcher of the trigger selects the incident (manual ones never do)."""
    if t.manual or t.schedule is not None:
        return False
    if str(inc.scope) not in t.scope:
        return False
    if t.kind is not None and str(inc.kind) not in t.kind:
        return False
    if t.severity is not None and str(inc.severity) not in t.severity:
        return False
    if t.metric is not None and not any(
        fnmatchcase(inc.metric, p) or fnmatchcase(inc.family, p) for p in t.metric
    ):
        return False
    if t.site is not None and not any(fnmatchcase(inc.site, p) for p in t.site):
        return False
    if t.detector is not None and not {str(a.detector) for a in inc.anomalies} & set(t.detector):
        return False
    return all(inc.labels.get(k) == v for k, v in t.labels.items())


def matching(playbooks: Iterable[CompiledPlaybook], inc: Incident) -> list[CompiledPlaybook]:
    """The enabled playbooks whose trigger selects the incident, in load order."""
    return [
        pb for pb in playbooks if pb.playbook.enabled and trigger_matches(pb.playbook.trigger, inc)
    ]
