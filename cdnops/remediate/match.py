"""Incident -> playbooks: pure matching of a trigger against an incident."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from cdnops.incidents.model import Incident, kind_of
from cdnops.remediate.loader import CompiledPlaybook
from cdnops.remediate.schema import Trigger


def trigger_matches(t: Trigger, inc: Incident) -> bool:
    """Whether every matcher of the trigger selects the incident (manual ones never do)."""
    if t.manual or t.schedule is not None:
        return False
    if str(inc.scope) not in t.scope:
        return False
    if t.kind is not None and not kinds_of(inc) & set(t.kind):
        return False
    if t.severity is not None and str(inc.severity) not in t.severity:
        return False
    if t.metric is not None and not any(
        fnmatchcase(m, p) for m in metrics_of(inc) for p in t.metric
    ):
        return False
    if t.site is not None and not any(fnmatchcase(inc.site, p) for p in t.site):
        return False
    if t.detector is not None and not {str(a.detector) for a in inc.anomalies} & set(t.detector):
        return False
    return all(inc.labels.get(k) == v for k, v in t.labels.items())


def metrics_of(inc: Incident) -> set[str]:
    """What an incident shows: its trigger, its family and every anomaly it absorbed.

    An appliance has one incident for all its anomalies, named after the first; a crash
    may be seen first as 5xx and a moment later as the failed service.
    """
    return {inc.metric, inc.family, *(a.metric for a in inc.anomalies)}


def kinds_of(inc: Incident) -> set[str]:
    """The incident's kind and those of every anomaly it absorbed."""
    return {str(inc.kind), *(str(kind_of(a.metric)) for a in inc.anomalies)}


def matching(playbooks: Iterable[CompiledPlaybook], inc: Incident) -> list[CompiledPlaybook]:
    """The enabled playbooks whose trigger selects the incident, in load order."""
    return [
        pb for pb in playbooks if pb.playbook.enabled and trigger_matches(pb.playbook.trigger, inc)
    ]
