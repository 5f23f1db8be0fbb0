"""The `api.alertmanager:` section: how Alertmanager's alerts become incidents."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

SeverityName = Literal["warning", "critical"]


def _label_name(value: str) -> str:
    if not _LABEL_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
    return value


LabelName = Annotated[str, AfterValidator(_label_name)]

DEFAULT_SEVERITIES: dict[str, SeverityName] = {
    "critical": "critical",
    "page": "critical",
    "error": "critical",
    "warning": "warning",
    "info": "warning",
}


class AlertmanagerConfig(BaseModel):
    """Which alerts are taken and which labels name the appliance, the site and the severity.

    An alert names an appliance when one of `appliance_labels` is set (the first set
    wins; a `host:port` value, as Prometheus' `instance` label has, names the host);
    otherwise a site when one of `site_labels` is set; otherwise the whole fleet.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, strict=True)
    appliance_labels: tuple[LabelName, ...] = ("appliance", "instance")
    site_labels: tuple[LabelName, ...] = ("site",)
    name_label: LabelName = Field(
        default="alertname", description="the incident's metric: what playbooks match on"
    )
    severity_label: LabelName = "severity"
    severities: dict[str, SeverityName] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITIES),
        description="severity label value -> incident severity",
    )
    default_severity: SeverityName = Field(
        default="warning", description="when the severity label is absent or not mapped"
    )
    match: dict[LabelName, str] = Field(
        default_factory=dict,
        description="take only alerts whose labels match all of these (shell-style wildcards)",
    )
    copy_labels: tuple[str, ...] = Field(
        default=("*",), description="label names (wildcards) copied onto the incident"
    )
    max_alerts: int = Field(
        default=1000, ge=1, le=100_000, description="alerts accepted in one request"
    )
    expire_after_s: float | None = Field(
        default=None,
        gt=0,
        description="resolve an alert incident none of whose alerts was sent for this long "
        "(above Alertmanager's repeat_interval); none: only a resolved alert resolves it",
    )
