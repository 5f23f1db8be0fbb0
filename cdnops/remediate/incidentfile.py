"""The sample incident `cdnops playbook test` reads: an incident, live state, site capacity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cdnops.config.issues import issues_from_validation
from cdnops.config.yamlload import load_yaml
from cdnops.errors import ConfigError
from cdnops.incidents.model import Incident, IncidentKind, Key, Scope, Severity
from cdnops.model import Anomaly, Detector


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnomalySpec(_Model):
    """One anomaly the incident absorbed."""

    metric: str
    detector: Literal["bounds", "temporal", "peers", "counter", "trend", "reachability", "service"]
    value: float = 0.0
    explanation: str = ""


class IncidentSpec(_Model):
    """The incident, as the tracker would hand it over."""

    scope: Literal["appliance", "site", "fleet"] = "appliance"
    subject: str
    site: str = ""
    kind: Literal["metric", "unreachable", "service_failed"] = "metric"
    metric: str
    severity: Literal["warning", "critical"] = "critical"
    labels: dict[str, str] = Field(default_factory=dict)
    members: tuple[str, ...] = ()
    parent: str | None = None
    silenced_by: str | None = None
    anomalies: tuple[AnomalySpec, ...] = ()


class SiteSpec(_Model):
    """The site's capacity picture, for the capacity rail."""

    appliances: int = Field(default=10, ge=1)
    unavailable: int = Field(default=0, ge=0)


class SampleFile(_Model):
    """`incident:` (required), `appliance:` live state as conditions see it, `site:`."""

    incident: IncidentSpec
    appliance: dict[str, Any] = Field(default_factory=dict)
    site: SiteSpec = Field(default_factory=SiteSpec)


@dataclass(frozen=True)
class Sample:
    """A loaded sample: the incident, the appliance's live state and the site's capacity."""

    incident: Incident
    appliance: dict[str, Any]
    site: SiteSpec


def load_sample(path: Path) -> Sample:
    """Read a sample incident file; ConfigError with every issue at its line."""
    doc = load_yaml(path)
    try:
        spec = SampleFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError([*doc.issues, *issues_from_validation(exc, doc, SampleFile)]) from None
    if doc.issues:
        raise ConfigError(doc.issues)
    return Sample(_incident(spec.incident), spec.appliance, spec.site)


def _incident(s: IncidentSpec) -> Incident:
    site = s.site or (s.subject if s.scope == "site" else "")
    anomalies = tuple(
        Anomaly(s.subject, site, a.metric, Detector(a.detector), a.value, 0.0, 1.0, 0.0,
                a.explanation or f"{a.metric} {a.value:g}")
        for a in s.anomalies
    )  # fmt: skip
    return Incident(
        id="sample",
        key=Key(Scope(s.scope), s.subject, IncidentKind(s.kind), s.metric),
        site=site,
        metric=s.metric,
        severity=Severity(s.severity),
        opened_ts=0.0,
        first_seen_ts=0.0,
        last_seen_ts=0.0,
        parent=s.parent,
        silenced_by=s.silenced_by,
        members=s.members,
        labels=s.labels,
        anomalies=anomalies,
    )
