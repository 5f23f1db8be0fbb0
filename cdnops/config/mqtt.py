"""The `mqtt:` section: where incidents, executions and audit records are published."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MqttConfig(BaseModel):
    """Absent (the default): no broker, events stay in the store's outbox."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535, strict=True)
