"""The `mqtt:` section: the broker that incidents, executions and audit records go to."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from cdnops.config.issues import render
from cdnops.config.secrets import SecretSource, resolve_path

# A topic level is written in the topic tree as is: no wildcards, no separators, no NUL.
_LEVEL = re.compile(r"[^/#+\x00]+")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

Seconds = Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class MqttTls(_Model):
    """TLS to the broker; `tls: {}` verifies the broker against the system's CAs."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "give both cert_file and key_file for a client certificate, or neither"
            )
        return self


class MqttConfig(_Model):
    """Absent (the default): no broker, events stay in the store's outbox."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535, strict=True)
    client_id: str | None = None  # default: `cdnops-<instance>`
    topic_prefix: str | None = None  # default: `cdnops/<instance>`
    username: str | None = None
    password: SecretSource | None = None
    tls: MqttTls | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600, strict=True)
    publish_timeout_s: Seconds = 10.0
    outbox_max_events: int = Field(default=100_000, ge=1, strict=True)
    backoff_min_s: Seconds = 0.5
    backoff_max_s: Seconds = 30.0
    commands_enabled: bool = Field(default=False, strict=True)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError(f"must be a host name or IP address, got {render(value)}")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        if value is not None and not _CLIENT_ID.fullmatch(value):
            raise ValueError(
                f"must be 1 to 64 characters from A-Z a-z 0-9 _ . -, got {render(value)}"
            )
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = topic_prefix_problem(value)
        if problem:
            raise ValueError(f"{problem}, got {render(value)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s:g}) must be at least "
                f"backoff_min_s ({self.backoff_min_s:g})"
            )
        if self.password is not None and self.username is None:
            raise ValueError("password is given without a username")
        return self

    def prefix(self, instance: str) -> str:
        """The topic prefix every topic starts with."""
        return self.topic_prefix or f"cdnops/{instance}"

    def identifier(self, instance: str) -> str:
        """The MQTT client id."""
        return self.client_id or f"cdnops-{instance}"


def topic_prefix_problem(value: str) -> str:
    """Why `value` cannot prefix topics, or "" when it can."""
    if value.startswith("$"):
        return "must not start with $ (topics the broker reserves)"
    levels = value.split("/")
    if not all(_LEVEL.fullmatch(level) for level in levels):
        return "must be topic levels separated by /, none empty, without + # or NUL"
    return ""
