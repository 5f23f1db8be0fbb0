"""The daemon's settings: one tree of frozen pydantic models loaded from one YAML file."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from cdnops.config.api import ApiConfig
from cdnops.config.detect import DetectConfig
from cdnops.config.incidents import IncidentsConfig
from cdnops.config.issues import LocatedValueError, issues_from_validation, render
from cdnops.config.mqtt import MqttConfig
from cdnops.config.remediate import RemediateConfig
from cdnops.config.secrets import SecretSource, resolve_path
from cdnops.config.yamlload import YamlDocument, load_yaml
from cdnops.errors import ConfigError, Issue
from cdnops.model import CONTRACT_METRICS, HealthFormat

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_METRIC = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _metric_name(value: str) -> str:
    if not _METRIC.fullmatch(value):
        raise ValueError(
            "must be a metric name (letters, digits and _, not starting with a digit), "
            f"got {render(value)}"
        )
    return value


MetricName = Annotated[str, AfterValidator(_metric_name)]


# Durations: strict, so that `5m` or `true` are errors rather than guesses.
Seconds = Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]
Delay = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class PollSettings(_Model):
    """How often and how hard the fleet is polled."""

    interval_s: Seconds = 10.0
    timeout_s: Seconds = 2.0
    connect_timeout_s: Seconds = 1.0
    concurrency: int = Field(default=512, ge=1, strict=True)
    max_body_bytes: int = Field(default=65536, ge=1024, strict=True)
    metrics: tuple[MetricName, ...] = Field(default=CONTRACT_METRICS, min_length=1)
    health_format: HealthFormat = HealthFormat.JSON
    confirm_retries: int = Field(default=2, ge=0, le=10, strict=True)
    retry_delay_s: Delay | None = None  # None: a tenth of interval_s

    @field_validator("timeout_s")
    @classmethod
    def _below_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval_s")  # absent when interval_s itself is invalid
        if interval is not None and value >= interval:
            raise ValueError(
                f"must be less than poll.interval_s ({interval:g}), got {value:g}: "
                "a poll must end before the next one starts"
            )
        return value

    @field_validator("retry_delay_s")
    @classmethod
    def _retry_below_interval(cls, value: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("interval_s")
        if value is not None and interval is not None and value >= interval:
            raise ValueError(
                f"must be less than poll.interval_s ({interval:g}), got {value:g}: "
                "a confirmation re-poll comes before the next interval"
            )
        return value

    @field_validator("metrics")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        first: dict[str, int] = {}
        for i, name in enumerate(value):
            j = first.setdefault(name, i)
            if j != i:
                raise LocatedValueError(f'duplicate metric "{name}" (also item {j})', at=(i,))
        return value


class HttpSettings(_Model):
    """The daemon's own HTTP server (/metrics, /healthz)."""

    listen: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535, strict=True)
    per_appliance_metrics: bool = Field(default=False, strict=True)

    @field_validator("listen")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"must be an IP address such as 127.0.0.1, 0.0.0.0 or ::, got {render(value)}"
            ) from None
        return value


class LoggingSettings(_Model):
    """What is logged and how it is written."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "logfmt", "journald"] = "auto"


class Settings(_Model):
    """The whole config file. Relative paths are taken from the config file's folder."""

    instance: str = "cdnops"
    inventory: Path
    state_dir: Path = Field(default=Path("state"), validate_default=True)
    appliance_token: SecretSource
    shutdown_grace_s: Seconds = 10.0
    retention_days: float = Field(default=90.0, gt=0, le=3650, strict=True)
    poll: PollSettings = Field(default_factory=PollSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)
    # a dict validated like a written section: its playbooks_dir is taken from the config's folder
    remediation: RemediateConfig = Field(default_factory=dict, validate_default=True)
    api: ApiConfig = Field(default_factory=ApiConfig)
    mqtt: MqttConfig | None = None

    @field_validator("instance")
    @classmethod
    def _instance_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                f"must be 1 to 64 characters from A-Z a-z 0-9 _ . -, got {render(value)}"
            )
        return value

    @field_validator("inventory", "state_dir", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        # Path("") would silently mean the current folder
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"must be a path, got {render(value)}")
        return value

    @field_validator("inventory", "state_dir")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)


TOP_LEVEL_KEYS = frozenset(Settings.model_fields)


def load_settings(path: Path) -> Settings:
    """Load and validate a config file.

    Raises:
        ConfigError: with every issue found (unreadable file, YAML syntax, duplicate keys,
            unknown keys, wrong types or values), each at its file:line:col.
    """
    return settings_from_document(load_yaml(path), path.parent)


def settings_from_document(doc: YamlDocument, base_dir: Path) -> Settings:
    """Validate an already parsed config file; relative paths are taken from `base_dir`."""
    issues: list[Issue] = list(doc.issues)
    settings: Settings | None = None
    if not isinstance(doc.data, dict):
        found = "an empty file" if doc.data is None else render(doc.data)
        message = f"must be a mapping of settings (inventory:, poll:, ...), got {found}"
        issues.append(doc.issue((), message))
    else:
        try:
            settings = Settings.model_validate(doc.data, context={"base_dir": base_dir.absolute()})
        except ValidationError as exc:
            issues.extend(issues_from_validation(exc, doc, Settings))
    if issues or settings is None:
        # `from None`: a chained ValidationError would print inputs, the token among them
        raise ConfigError(sorted(issues, key=lambda i: (i.line, i.col))) from None
    token = settings.appliance_token
    key = "env" if token.env is not None else "file"
    where = doc.issue(("appliance_token", key), "")
    token.located(doc.file, where.line, where.col, "appliance_token")
    write = settings.api.write_token
    if write is not None:
        key = "env" if write.env is not None else "file"
        where = doc.issue(("api", "write_token", key), "")
        write.located(doc.file, where.line, where.col, "api.write_token")
    mqtt = settings.mqtt
    if mqtt is not None and mqtt.password is not None:
        key = "env" if mqtt.password.env is not None else "file"
        where = doc.issue(("mqtt", "password", key), "")
        mqtt.password.located(doc.file, where.line, where.col, "mqtt.password")
    return settings
