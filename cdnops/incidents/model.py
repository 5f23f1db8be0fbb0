"""Incident types: scope, kind, severity, the incident itself and its triage signals."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from cdnops.model import Anomaly, Detector


class Scope(enum.StrEnum):
    """What an incident is about: one appliance, a site, or the whole fleet."""

    APPLIANCE = "appliance"
    SITE = "site"
    FLEET = "fleet"


class IncidentKind(enum.StrEnum):
    """The kind of problem; metric anomalies are further split by metric family."""

    METRIC = "metric"
    UNREACHABLE = "unreachable"
    SERVICE_FAILED = "service_failed"
    ALERT = "alert"  # taken in from Alertmanager


class Severity(enum.StrEnum):
    """How bad: site and fleet incidents, unreachable and failed services are critical."""

    WARNING = "warning"
    CRITICAL = "critical"


class Status(enum.StrEnum):
    """Open until a clean period has passed."""

    OPEN = "open"
    RESOLVED = "resolved"


FLEET_SUBJECT = "fleet"


def kind_of(metric: str) -> IncidentKind:
    """The incident kind of an anomaly's `metric` field."""
    if metric == "reachability":
        return IncidentKind.UNREACHABLE
    if metric.startswith("service:"):
        return IncidentKind.SERVICE_FAILED
    return IncidentKind.METRIC


class Key(NamedTuple):
    """What makes two anomalies the same problem: one open incident per key.

    A named tuple rather than a dataclass: it is built and hashed for every active
    anomaly on every tick, and tuple hashing is done in C.
    """

    scope: Scope
    subject: str  # appliance id, site, or `fleet`
    kind: IncidentKind
    family: str

    def __str__(self) -> str:
        return f"{self.scope}/{self.subject}/{self.kind}/{self.family}"


def slot(key: Key) -> Key:
    """Where an open incident is filed: an appliance has one incident for all its anomalies
    (its key names the trigger's kind and family), a site or fleet one per kind and family."""
    if key.scope is Scope.APPLIANCE and key.kind is not IncidentKind.ALERT:
        return appliance_slot(key.subject)
    return key


def appliance_slot(appliance: str) -> Key:
    """The slot of an appliance's incident."""
    return Key(Scope.APPLIANCE, appliance, IncidentKind.METRIC, "*")


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One step in an incident's life."""

    ts: float
    event: str  # opened, absorbed, inhibited, released, flapped, silenced, triaged, resolved...
    detail: str


@dataclass(frozen=True, slots=True)
class TriageSignal:
    """One signal that changed around the trigger, with the line an operator reads."""

    appliance: str
    metric: str
    change_ts: float  # NaN when no significant change was found
    lead_s: float  # > 0: changed that long before the trigger
    shift_sigma: float  # size of the mean shift in noise standard deviations (signed)
    pearson: float
    spearman: float
    score: float  # in [0, 1], the ranking key
    line: str


@dataclass(slots=True)
class Incident:
    """One problem. Mutated only by the tracker; readers get copies (`snapshot`)."""

    id: str
    key: Key
    site: str  # empty for a fleet incident
    metric: str  # the triggering metric (`reachability`, `service:<name>` included)
    severity: Severity
    opened_ts: float
    first_seen_ts: float
    last_seen_ts: float
    status: Status = Status.OPEN
    resolved_ts: float | None = None
    reopened_ts: float | None = None  # last reopening within the hold-down; restarts the wait
    # When the evidence that opened it began (the tracker's clock): the group wait runs
    # from here, so it overlaps detection's confirmation. None: from `opened_ts`.
    onset_ts: float | None = None
    active: bool = True  # an absorbed anomaly is active right now
    quiet_since_ts: float | None = None
    flaps: int = 0
    parent: str | None = None  # the site or fleet incident that inhibits this one
    silenced_by: str | None = None
    acknowledged_by: str | None = None  # the operator who acknowledged it, if anyone did
    announced: bool = False  # `opened` went on the bus (silenced incidents stay quiet)
    members: tuple[str, ...] = ()  # appliances of a site incident, sites of a fleet one
    labels: Mapping[str, str] = field(default_factory=dict)
    anomalies: tuple[Anomaly, ...] = ()  # the most recent ones absorbed, capped
    absorbed_total: int = 0
    triage: tuple[TriageSignal, ...] = ()

    @property
    def scope(self) -> Scope:
        return self.key.scope

    @property
    def subject(self) -> str:
        return self.key.subject

    @property
    def kind(self) -> IncidentKind:
        return self.key.kind

    @property
    def family(self) -> str:
        return self.key.family

    @property
    def inhibited(self) -> bool:
        return self.parent is not None

    @property
    def silenced(self) -> bool:
        return self.silenced_by is not None

    def snapshot(self) -> Incident:
        """A copy that later ticks do not change (every collection field is immutable)."""
        return Incident(**{name: getattr(self, name) for name in _INCIDENT_FIELDS})

    def summary(self) -> str:
        """`site sea01 origin_latency_p99_ms (metric)`: a short name for logs."""
        return f"{self.scope} {self.subject} {self.family} ({self.kind})"


_INCIDENT_FIELDS = tuple(f.name for f in fields(Incident))


def anomaly_to_json(a: Anomaly) -> dict[str, Any]:
    """An anomaly as JSON-ready data."""
    return {
        "appliance": a.appliance,
        "site": a.site,
        "metric": a.metric,
        "detector": str(a.detector),
        "value": a.value,
        "baseline": a.baseline,
        "score": a.score,
        "since_ts": a.since_ts,
        "explanation": a.explanation,
        "onset_ts": a.onset_ts if math.isfinite(a.onset_ts) else None,
    }


def anomaly_from_json(d: Mapping[str, Any]) -> Anomaly:
    """The inverse of `anomaly_to_json`."""
    return Anomaly(
        appliance=str(d["appliance"]),
        site=str(d["site"]),
        metric=str(d["metric"]),
        detector=Detector(d["detector"]),
        value=_num(d["value"]),
        baseline=_num(d["baseline"]),
        score=float(d["score"]),
        since_ts=float(d["since_ts"]),
        explanation=str(d["explanation"]),
        onset_ts=_num(d.get("onset_ts")),  # absent in rows from before onsets
    )


def _num(x: Any) -> float:
    # JSON has no NaN: it is stored as null.
    return float("nan") if x is None else float(x)


CRITICAL_SCORE = 0.9  # an appliance anomaly scoring this much makes its incident critical


def signature(a: Anomaly) -> tuple[str, str, str, float]:
    """What tells one anomaly from another across ticks (its values change, this does not)."""
    return (a.appliance, a.metric, str(a.detector), a.since_ts)


def evidence_lead_s(anomalies: Iterable[Anomaly]) -> float:
    """How long before entering the earliest evidence of `anomalies` began: the longest
    `since_ts - onset_ts`, 0 when no onset is known.

    A duration rather than a timestamp, so that it carries over to the tracker's clock.
    """
    leads = [a.since_ts - a.onset_ts for a in anomalies if math.isfinite(a.onset_ts)]
    return max(0.0, *leads) if leads else 0.0


def trigger_of(anomalies: Sequence[Anomaly]) -> Anomaly:
    """The anomaly an incident is named after: the first to enter, the strongest on a tie."""
    return min(anomalies, key=lambda a: (a.since_ts, -a.score))


def severity_of(scope: Scope, anomalies: Iterable[Anomaly]) -> Severity:
    """Site and fleet incidents are critical; an appliance's is once it holds an unreachable
    or failed-service anomaly, or one scoring at least CRITICAL_SCORE."""
    if scope is not Scope.APPLIANCE:
        return Severity.CRITICAL
    for a in anomalies:
        if a.score >= CRITICAL_SCORE or kind_of(a.metric) is not IncidentKind.METRIC:
            return Severity.CRITICAL
    return Severity.WARNING
