"""The exceptions cdnops raises on purpose.

    CdnopsError
    +-- ConfigError          a config, inventory or playbook file is invalid (carries every issue)
    +-- ApplianceError       an appliance answered an action request badly or not at all
    +-- StoreError           the embedded store cannot be opened or written

Library errors are wrapped at the boundary (`raise ConfigError(...) from exc`) so callers
catch one tree. Poll failures are not exceptions: they are data (`PollFailure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class CdnopsError(Exception):
    """Base of every error cdnops raises on purpose."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a file, at a place an editor can jump to."""

    file: str
    line: int  # 1-based; 0 when the place is unknown
    col: int  # 1-based; 0 when the place is unknown
    path: str  # dotted key path, e.g. `poll.interval_s` or `appliances[3].url`
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(CdnopsError):
    """A file is invalid; `issues` lists every problem found, not just the first."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class ApplianceError(CdnopsError):
    """An action request to an appliance failed; the message names appliance, action, status."""


class StoreError(CdnopsError):
    """The embedded store cannot be opened, migrated or written."""
