"""Incident settings (the `incidents:` section of the config)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# The incident kinds a silence may name (see `cdnops.incidents.model.IncidentKind`).
KINDS = ("metric", "unreachable", "service_failed", "alert")


class SilenceConfig(BaseModel):
    """One silence: every matcher given must match; an absent matcher matches anything.

    `appliance`, `site` and `metric` accept shell-style wildcards (`sea01-*`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default="", max_length=64, description="defaults to `config-<position>`")
    appliance: str | None = None
    site: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    metric: str | None = Field(default=None, description="a metric, family or `service:<name>`")
    kind: str | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    comment: str = Field(min_length=1, description="why, and who to ask")

    @model_validator(mode="after")
    def _check(self) -> SilenceConfig:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        return self


class CorrelationConfig(BaseModel):
    """When anomalies of one family on many appliances become one site (or fleet) incident.

    A site incident opens when at least `min_members` members are affected and either
    their share reaches `min_share` or their number reaches `min_count`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_share: float = Field(default=0.3, gt=0, le=1)
    min_count: int = Field(default=3, ge=1)
    min_members: int = Field(default=2, ge=1)


class TriageConfig(BaseModel):
    """Post-alert triage: rank the signals that changed around an incident's trigger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    history_ticks: int = Field(default=60, ge=8, le=3600)
    top_signals: int = Field(default=5, ge=1, le=50)
    workers: int = Field(default=1, ge=1, le=8)
    min_change_sigma: float = Field(default=6.0, gt=0)


class IncidentsConfig(BaseModel):
    """Incident lifecycle, correlation, silences and triage; every field has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clean_period_s: float = Field(default=120.0, gt=0, description="quiet time that resolves")
    hold_down_s: float = Field(default=600.0, ge=0, description="recurrence reopens, as a flap")
    grouping_window_s: float = Field(default=60.0, gt=0)
    group_wait_s: float = Field(default=30.0, ge=0)
    site: CorrelationConfig = CorrelationConfig()
    fleet: CorrelationConfig = CorrelationConfig(min_share=0.3, min_count=3, min_members=2)
    families: dict[str, str] = Field(default_factory=dict, description="metric -> family")
    excluded_states: tuple[str, ...] = ("draining", "drained", "maintenance")
    max_anomalies_kept: int = Field(default=50, ge=1, le=10_000)
    silences: tuple[SilenceConfig, ...] = ()
    triage: TriageConfig = TriageConfig()

    @model_validator(mode="after")
    def _check(self) -> IncidentsConfig:
        allowed = {"serving", "draining", "drained", "maintenance"}
        bad = [s for s in self.excluded_states if s not in allowed]
        if bad:
            raise ValueError(f"excluded_states: unknown state(s) {', '.join(map(repr, bad))}")
        ids = [s.id for s in self.silences if s.id]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"silences: duplicate id(s) {', '.join(map(repr, dup))}")
        return self


def epoch(dt: datetime) -> float:
    """Seconds since the epoch of an aware datetime."""
    return dt.timestamp()
