"""Meaning checks of a playbook's trigger: unknown metrics, and triggers that can never fire."""

from __future__ import annotations

import difflib
from collections.abc import Collection
from fnmatch import fnmatchcase

from cdnops.config.yamlload import Loc
from cdnops.remediate.schedule import parse_cron
from cdnops.remediate.schema import Playbook, Trigger

ALL_KINDS = ("metric", "unreachable", "service_failed", "alert")
_DETECTOR_KIND = {"reachability": "unreachable", "service": "service_failed"}
_WILDCARDS = set("*?[")
_INCIDENT_ONLY = ("kind", "metric", "detector", "severity")


def trigger_issues(pb: Playbook, metrics: Collection[str]) -> list[tuple[Loc, str]]:
    """(place relative to the playbook, message) for each problem of the trigger."""
    t = pb.trigger
    out: list[tuple[Loc, str]] = []
    if t.schedule is not None:
        out.extend(_schedule_issues(t))
    for i, pattern in enumerate(t.metric or ()):
        if _WILDCARDS & set(pattern) or pattern == "reachability":
            continue
        if pattern.startswith("service:") or pattern in metrics:
            continue
        if t.kind is not None and "alert" in t.kind:
            continue  # an alert's name: Alertmanager's to choose, not a metric cdnops polls
        close = difflib.get_close_matches(pattern, list(metrics), n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        out.append((("trigger", "metric", i), f'unknown metric "{pattern}"{hint}'))
    for key in ("scope", "kind", "metric", "detector", "severity", "site"):
        if getattr(t, key) == ():
            out.append((("trigger", key), "an empty list matches nothing: the trigger never fires"))
    if not out and not t.manual and t.schedule is None and not possible_kinds(t):
        message = (
            "this trigger can never fire: no incident has " + ", ".join(_describe(t)) + " at once"
        )
        out.append((("trigger",), message))
    return out


def _schedule_issues(t: Trigger) -> list[tuple[Loc, str]]:
    assert t.schedule is not None
    out: list[tuple[Loc, str]] = []
    try:
        parse_cron(t.schedule)
    except ValueError as exc:
        out.append((("trigger", "schedule"), str(exc)))
    if t.manual:
        message = "manual: true means only an operator starts it; drop it or the schedule"
        out.append((("trigger", "manual"), message))
    for key in _INCIDENT_ONLY:
        if getattr(t, key) is not None:
            message = (
                f"{key} matches incidents, and a scheduled run has none; "
                "a schedule selects appliances by site and labels"
            )
            out.append((("trigger", key), message))
    return out


def possible_kinds(t: Trigger) -> set[str]:
    """The incident kinds that can satisfy every matcher of the trigger together."""
    kinds = set(t.kind or ALL_KINDS)
    if t.metric is not None:
        kinds &= {k for k in ALL_KINDS if any(_metric_may_be(p, k) for p in t.metric)}
    if t.detector is not None:
        kinds &= {_DETECTOR_KIND.get(d, "metric") for d in t.detector}
    if t.severity is not None and "critical" not in t.severity:
        # site and fleet incidents, lost appliances and failed services are always critical
        kinds &= {"metric", "alert"} if "appliance" in t.scope else {"alert"}
    return kinds


def _metric_may_be(pattern: str, kind: str) -> bool:
    if kind == "alert":
        return True  # alert names are free-form
    if kind == "unreachable":
        return fnmatchcase("reachability", pattern)
    if kind == "service_failed":
        return pattern.startswith("service:") or (
            bool(_WILDCARDS & set(pattern)) and fnmatchcase("service:x", pattern[:8] + "x")
        )
    return pattern != "reachability" and not pattern.startswith("service:")


def _describe(t: Trigger) -> list[str]:
    parts = []
    for key in ("scope", "kind", "metric", "detector", "severity"):
        value = getattr(t, key)
        if value is not None:
            parts.append(f"{key} {' or '.join(value)}")
    return parts
