"""The `api:` section: whether /api/v1 is served, and the token its writes need."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cdnops.config.intake import AlertmanagerConfig
from cdnops.config.secrets import SecretSource


class ApiConfig(BaseModel):
    """The JSON API under /api/v1 on the daemon's HTTP port (`http.listen`, 127.0.0.1 by
    default). Reads are open there; writes need `Authorization: Bearer <write_token>`, and
    without a `write_token` every write is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    enabled: bool = Field(default=True, strict=True)
    write_token: SecretSource | None = Field(
        default=None, description="{env: NAME} or {file: PATH}; never the token itself"
    )
    alertmanager: AlertmanagerConfig = AlertmanagerConfig()
