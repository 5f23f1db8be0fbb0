"""Remediation settings (the `remediation:` section of the config)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cdnops.config.secrets import resolve_path


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapacityConfig(_Model):
    """How much of a site (and of the fleet) may be unavailable before no more is removed."""

    max_unavailable_fraction: float = Field(default=0.25, gt=0, le=1)
    min_serving: int = Field(default=2, ge=0)
    fleet_max_unavailable_fraction: float = Field(default=0.1, gt=0, le=1)


class BreakerConfig(_Model):
    """A playbook pauses after `failures` failed executions within `window_s`."""

    failures: int = Field(default=3, ge=1)
    window_s: float = Field(default=3600.0, gt=0)
    cool_off_s: float = Field(default=1800.0, gt=0)


class RemediateConfig(_Model):
    """Playbooks and the safety rails around them; every field has a default."""

    enabled: bool = True
    playbooks_dir: Path = Field(default=Path("playbooks"), validate_default=True)
    dry_run: bool = False
    max_concurrent: int = Field(default=20, ge=1)
    cooldown_s: float = Field(default=900.0, ge=0)
    rate_limit_count: int = Field(default=30, ge=1)
    rate_limit_window_s: float = Field(default=3600.0, gt=0)
    action_timeout_s: float = Field(default=300.0, gt=0)
    action_poll_interval_s: float = Field(default=2.0, gt=0)
    capacity: CapacityConfig = Field(default_factory=CapacityConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    http_allow: tuple[str, ...] = Field(
        default=(), description="URL prefixes the `http` action may call"
    )

    @field_validator("playbooks_dir")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)
