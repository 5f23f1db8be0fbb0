"""The `api:` section: the HTTP API's write token and the Alertmanager intake."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cdnops.config.secrets import SecretSource


class ApiConfig(BaseModel):
    """Reads are open on the daemon's HTTP port; writes need `write_token`."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    enabled: bool = Field(default=True, strict=True)
    write_token: SecretSource | None = None
