"""Detection settings (the `detect:` section of the config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DetectConfig(BaseModel):
    """Detector parameters; every field has a default that suits the contract's metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)
