"""Playbook models: what an operator writes in `playbooks/*.yaml` (and the JSON Schema of it)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from cdnops.remediate.actions import REGISTRY

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _as_tuple(value: Any) -> Any:
    # `kind: unreachable` reads better than `kind: [unreachable]`; both are accepted
    return (value,) if isinstance(value, str) else value


Strings = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]
Scopes = Annotated[tuple[Literal["appliance", "site", "fleet"], ...], BeforeValidator(_as_tuple)]
Kinds = Annotated[
    tuple[Literal["metric", "unreachable", "service_failed", "alert"], ...],
    BeforeValidator(_as_tuple),
]
Detectors = Annotated[
    tuple[
        Literal["bounds", "temporal", "peers", "counter", "trend", "reachability", "service"], ...
    ],
    BeforeValidator(_as_tuple),
]
Severities = Annotated[tuple[Literal["warning", "critical"], ...], BeforeValidator(_as_tuple)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class Trigger(_Model):
    """Which incidents start the playbook: every matcher given must match.

    An absent matcher matches anything. `metric` and `site` accept shell-style wildcards.
    """

    scope: Scopes = ("appliance",)
    kind: Kinds | None = None
    metric: Strings | None = Field(
        default=None, description="metrics or families, `reachability`, `service:<name>`"
    )
    detector: Detectors | None = None
    severity: Severities | None = None
    site: Strings | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    schedule: str | None = Field(
        default=None,
        description="a cron line in UTC (minute hour day-of-month month day-of-week): runs on "
        "every appliance `site` and `labels` select, instead of on incidents",
    )
    manual: bool = Field(default=False, description="only run when an operator asks")


class Step(_Model):
    """One action with its parameters; string parameters may be templates."""

    name: str = ""
    action: str = Field(description="a registered action, e.g. restart_service or verify")
    params: dict[str, Any] = Field(default_factory=dict)
    when: str | None = Field(default=None, description="run the step only if this holds")
    timeout_s: float | None = Field(
        default=None, gt=0, le=86400, description="defaults to remediation.action_timeout_s"
    )
    retries: int = Field(default=0, ge=0, le=10)
    backoff_s: float = Field(default=2.0, ge=0, le=3600)
    continue_on_failure: bool = False


class Playbook(_Model):
    """A trigger, conditions over the incident and the live state, and ordered steps."""

    name: str
    description: str = ""
    mode: Literal["enforce", "dry_run"] = "enforce"
    trigger: Trigger
    conditions: tuple[str, ...] = Field(default=(), description="expressions that must all hold")
    steps: tuple[Step, ...] = Field(min_length=1)
    on_failure: tuple[Step, ...] = ()
    cooldown_s: float | None = Field(default=None, ge=0, description="overrides the config's")
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"must be 1 to 64 characters from A-Z a-z 0-9 _ . -, got {value!r}")
        return value


class PlaybookFile(_Model):
    """A file holding several playbooks."""

    playbooks: tuple[Playbook, ...] = Field(min_length=1)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a playbook file (one playbook, or `playbooks:` with several)."""
    single = Playbook.model_json_schema(ref_template="#/$defs/{model}")
    many = PlaybookFile.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**single.pop("$defs", {}), **many.pop("$defs", {}), "Playbook": single}
    step = defs["Step"]
    step["properties"]["action"]["enum"] = sorted(REGISTRY)
    # editors complete and check each action's parameters once the action is typed
    step["allOf"] = [
        {
            "if": {"properties": {"action": {"const": name}}, "required": ["action"]},
            "then": {"properties": {"params": spec.params.model_json_schema()}},
        }
        for name, spec in sorted(REGISTRY.items())
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "cdnops playbook file",
        "anyOf": [{"$ref": "#/$defs/Playbook"}, many],
        "$defs": defs,
    }
